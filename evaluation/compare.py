"""Compare two folders of images, like the official metric scripts.

    python -m evaluation.compare --real DIR --fake DIR --metrics mse,psnr,ssim,lpips,fid
    python -m evaluation.compare --real recon/ --fake edited/ --metrics mse_irr,ifg --components mouth \
        --discriminator latest.pt

Images pair by file stem (``001.png`` with ``001.jpg``), sorted by stem or in the order of a list
file (``--list test.txt``, as the release reads them); unpaired files are skipped with a notice.
``--real`` holds the real images (reconstruction metrics; the resized inputs that
``reconstruction.py --save_real`` writes) or the source reconstructions (editing metrics: mse_irr,
ifg, arc_dis); ``--fake`` the reconstructions or edits.

The release's conventions by default: evaluation batches of ``--batch_size 8`` pairs; per batch
MSE and LPIPS on [-1, 1], PSNR (from the batch MSE) and SSIM (``pytorch_ssim``: zero padding,
borders kept) on images min-max rescaled per image; every per-batch value weighted by its batch
size (``sum(v_b * n_b) / N``); IFG scores images one at a time; MSE_irr of images larger than
256 px is the release's: both files read and resized to 256 as ``d_score.py`` does
(:func:`evaluation.release_ifg.release_scores`; ``--mse_irr_full_size``: the loaded images at full
size). The project's earlier variants: ``--no_minmax`` (plain ``(x + 1) / 2``),
``--ssim_variant skimage`` (scikit-image, borders cropped) and ``--unweighted_batches`` (plain mean
of the per-batch values). Images of another size are resized with OpenCV INTER_LINEAR
(``--resize antialias``: PIL bicubic with antialiasing). FID uses all paired images of each folder.
See evaluation/README.md. Bad input ends with one ``error: ...`` line and exit status 2.

IFG is the paper's only with the release's discriminator (``--discriminator latest.pt``, a 256-px
rosinality StyleGAN2): then every pair is read from its files and scored as the release's
``d_score.py`` does (:mod:`evaluation.release_ifg`), whatever ``--size`` and ``--resize`` say. Any
other discriminator (the checkpoint's own, another StyleGAN2, TorchScript) scores the loaded images,
and the printed table and the JSON label its IFG as not the paper's
(:func:`evaluation.discriminators.ifg_label`).

``--json`` never overwrites an input: a path that is one of the input files (an image of either
folder, the list file, a metric network) is refused before anything is computed, and so is an
image-named file inside an input folder (it would become an input of the next run); the file is
written atomically. When ``--real`` and ``--fake`` are the same folder (or every pair is one file
twice) a notice says so: the values then compare each image with itself.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import torch

from model.boxes import component_indices
from utils.cli import TRUST_CODE_HELP, ArgumentParser, main_guard, progress
from utils.device import resolve_device
from utils.errors import UserError
from utils.image_io import IMAGE_EXTENSIONS, RESIZE_METHODS, list_images, load_image, open_rgb, read_list_entries

from .arcface import load_arcface
from .attr_classifier import load_classifier
from .discriminators import discriminator_kind, ifg_label, load_discriminator
from .fid import FeatureAccumulator, inception_features
from .metrics import METRICS, MSE_IRR_SIZE, frechet_distance, lpips_model
from .release_ifg import release_scores

PIXEL_METRICS = ("mse", "psnr", "ssim", "lpips", "mse_irr", "ifg", "arc_dis", "attr_acc")


def build_parser():
    p = ArgumentParser(description="Compare two image folders (pairs by file stem) with IA-FaceS metrics.")
    p.add_argument("--real", required=True, metavar="DIR", help="real images, or source reconstructions for "
                   "editing metrics")
    p.add_argument("--fake", required=True, metavar="DIR", help="reconstructions or edited images")
    p.add_argument("--metrics", default="mse,psnr,ssim",
                   help=f"comma-separated, from {', '.join(METRICS)} (default mse,psnr,ssim)")
    p.add_argument("--components", default=None, help="edited components whose boxes MSE_irr zeroes "
                   "(l_eye, r_eye, eyes, nose, mouth, all; comma-separated); adds mse_irr")
    p.add_argument("--size", type=int, default=None, help="resize every image to SIZE px first (default: the "
                   "fake image's size; real images of another size are resized to it)")
    p.add_argument("--batch_size", type=int, default=8, help="evaluation batch: one value per batch, weighted "
                   "by its size (default 8, as the release's scripts)")
    p.add_argument("--list", default=None, metavar="FILE", help="pair the images in the order of this list file "
                   "(entries name the files by stem, e.g. the release's test.txt); default: sorted by stem")
    p.add_argument("--no_minmax", action="store_true", help="PSNR/SSIM on plain (x + 1) / 2 images, without the "
                   "release's per-image min-max rescaling")
    p.add_argument("--ssim_variant", default="pytorch_ssim", choices=("pytorch_ssim", "skimage"),
                   help="pytorch_ssim (default, the release: zero padding, borders kept) or skimage (scikit-image, "
                        "borders cropped)")
    p.add_argument("--unweighted_batches", action="store_true", help="average the per-batch values without "
                   "weighting them by batch size (the project's earlier convention)")
    p.add_argument("--resize", default="opencv", choices=RESIZE_METHODS, help="how images of another size are "
                   "resized: opencv (default, the release's INTER_LINEAR) or antialias (PIL bicubic)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--lpips_vgg", default=None, metavar="PATH", help="torchvision vgg16-397923af.pth for LPIPS "
                   "(default: torch hub's checkpoint folder)")
    p.add_argument("--inception", default=None, metavar="PATH", help="pytorch-fid's "
                   "pt_inception-2015-12-05-6726825d.pth (default: torch hub's checkpoint folder)")
    p.add_argument("--discriminator", default=None, metavar="PATH", help="for ifg: the release's latest.pt "
                   "(a 256-px rosinality StyleGAN2: the paper's IFG), or, labelled not the paper's, a checkpoint "
                   "with a discriminator, another StyleGAN2 file, or a TorchScript module with --trust_code")
    p.add_argument("--mse_irr_full_size", action="store_true", help="MSE_irr at the images' full size (default: "
                   "images above 256 px read from the files and resized to 256 with OpenCV INTER_LINEAR, as the "
                   "release)")
    p.add_argument("--arcface", default=None, metavar="PATH", help="for arc_dis: an arcface_torch IResNet "
                   "state_dict, or an ArcFace TorchScript file with --trust_code")
    p.add_argument("--trust_code", action="store_true", help=TRUST_CODE_HELP)
    p.add_argument("--classifier", default=None, metavar="PATH", help="for attr_acc: an attribute classifier "
                   "(python -m evaluation.attr_classifier)")
    p.add_argument("--attribute", default=None, help="for attr_acc: the target attribute")
    p.add_argument("--target", type=int, choices=(0, 1), default=1, help="for attr_acc: the label the edits "
                   "should have (default 1)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    return p


def parse_metrics(text: str, components: Optional[str]) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    for m in names:
        if m not in METRICS:
            raise UserError(f"unknown metric '{m}'; choose from {', '.join(METRICS)}")
    if components and "mse_irr" not in names:
        names.append("mse_irr")
    if not names:
        raise UserError(f"no metric given; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def pair_files(real_dir: str, fake_dir: str, notice=lambda m: print(m, file=sys.stderr),
               order: Optional[list] = None):
    """[(stem, real path, fake path)] sorted by stem, or in the order of the stems ``order``
    (entries such as ``29960.jpg`` or ``07070``; a zero-padded id also matches ``7070``)."""
    def by_stem(folder: str, what: str) -> dict:
        out = {}
        for p in list_images(folder):
            if p.stem in out:
                raise UserError(f"two {what} images share the stem '{p.stem}' ({out[p.stem].name}, {p.name}); "
                                "stems must be unique to pair images")
            out[p.stem] = p
        return out

    real, fake = by_stem(real_dir, "--real"), by_stem(fake_dir, "--fake")
    common = sorted(set(real) & set(fake))
    if order is not None:
        from utils.image_io import canonical_id
        listed = []
        for entry in order:
            stem = Path(entry).stem if Path(entry).suffix else entry
            for s in dict.fromkeys([stem, canonical_id(stem)]):
                if s in real and s in fake:
                    listed.append(s)
                    break
        if not listed:
            raise UserError(f"no entry of the --list file names an image pair of {real_dir} and {fake_dir}")
        common = list(dict.fromkeys(listed))
    if not common:
        raise UserError(f"no image of {fake_dir} has a counterpart with the same file stem in {real_dir} "
                        f"({len(real)} and {len(fake)} images)")
    if len(common) < max(len(real), len(fake)):
        notice(f"notice: {len(real) - len(common)} --real and {len(fake) - len(common)} --fake images have no "
               f"counterpart and are skipped; comparing {len(common)} pairs")
    return [(s, real[s], fake[s]) for s in common]


def mse_irr_label(img_size: int, irr_size: Optional[int]) -> str:
    """What compare's MSE_irr of ``img_size``-px images is (``irr_size`` None: full size)."""
    if irr_size is not None and img_size > irr_size:
        return f"MSE_irr at {irr_size} px, read from the files as the release"
    if img_size == MSE_IRR_SIZE:
        return f"MSE_irr at {img_size} px, as the release"
    if img_size < MSE_IRR_SIZE:
        return f"MSE_irr at {img_size} px (the release compares {MSE_IRR_SIZE}-px images)"
    return f"MSE_irr at {img_size} px, full size (not the release's {MSE_IRR_SIZE} px)"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_json_path(json_path: str, args, pairs) -> None:
    """Refuse a ``--json`` path that would overwrite an input (one line), before any work."""
    target = Path(json_path)
    inputs = [p for _, r, f in pairs for p in (r, f)]
    for folder in (args.real, args.fake):
        try:
            inputs += list_images(folder)  # unpaired images are inputs too
        except UserError:
            pass
    inputs += [Path(v) for v in (args.list, args.discriminator, args.arcface, args.classifier, args.lpips_vgg,
                                 args.inception) if v]
    for p in inputs:
        if _same_file(target, p):
            raise UserError(f"--json {json_path} is the input {p}: writing the results there would overwrite it; "
                            "choose another file")
    if target.suffix.lower() in IMAGE_EXTENSIONS:
        for folder in (args.real, args.fake):
            if _same_file(target.parent, Path(folder)):
                raise UserError(f"--json {json_path} is an image name inside the input folder {folder}: it would be "
                                "read as an image by the next run; choose a .json file outside it")
    if target.is_dir():
        raise UserError(f"--json {json_path} is a folder; give a file name")


def write_json_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _Loader:
    def __init__(self, size: Optional[int], notice, resize: str = "opencv"):
        self.size, self.notice, self.noticed, self.resize = size, notice, False, resize

    def pair(self, real: Path, fake: Path) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size:
            return load_image(real, self.size, self.resize), load_image(fake, self.size, self.resize)
        f = load_image(fake)
        if f.shape[-1] != f.shape[-2]:
            raise UserError(f"{fake} is not square ({f.shape[-1]}x{f.shape[-2]}); pass --size N")
        w, h = open_rgb(real).size
        if (w, h) != (f.shape[-1], f.shape[-2]) and not self.noticed:
            self.notice(f"notice: resizing --real images to the --fake size {f.shape[-1]} px (first: {real.name}, "
                        f"{w}x{h})")
            self.noticed = True
        return load_image(real, f.shape[-1], self.resize), f


def compare_pairs(pairs, metrics, nets: dict, *, components: Optional[str] = None, batch_size: int = 8,
                  minmax: bool = True, ssim_variant: str = "pytorch_ssim", weighted: bool = True,
                  size: Optional[int] = None, resize: str = "opencv", irr_size: Optional[int] = MSE_IRR_SIZE,
                  attribute: Optional[str] = None, target: bool = True, device=torch.device("cpu"),
                  notice=lambda m: print(m, file=sys.stderr), desc: str = "comparing") -> tuple[dict, int]:
    """The metric values of image pairs ``[(stem, real path, fake path)]`` in their order, the
    release's way (see the module docstring): evaluation batches of ``batch_size`` pairs, each
    per-batch value weighted by its batch size (``weighted=False``: the plain mean of the
    per-batch values), FID over every pair. ``nets`` holds what a metric needs: ``lpips`` (the
    LPIPS network), ``fid`` (an Inception feature extractor), ``ifg`` (a discriminator: the
    release's scores the files as ``d_score.py``), ``arc_dis`` (an ArcFace embedder),
    ``attr_acc`` (a classifier, with ``attribute``/``target``). Returns ({metric: value} in the
    order of ``metrics``, the compared image size)."""
    if "fid" in metrics and len(pairs) < 2:
        raise UserError("FID needs at least 2 image pairs")
    paper_ifg = "ifg" in nets and discriminator_kind(nets["ifg"]) == "release"
    fid_sets = (FeatureAccumulator(nets["fid"]), FeatureAccumulator(nets["fid"])) if "fid" in metrics else None
    loader = _Loader(size, notice, resize)
    sums = {m: 0.0 for m in metrics if m in PIXEL_METRICS}
    weights = {m: 0.0 for m in sums}
    img_size = 0
    bar = progress(len(pairs), desc)
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        loaded = [loader.pair(r, f) for _, r, f in chunk]
        try:
            real = torch.stack([a for a, _ in loaded])
            fake = torch.stack([b for _, b in loaded])
        except RuntimeError:
            raise UserError("the --fake images differ in size; pass --size N") from None
        n, img_size = real.shape[0], real.shape[-1]
        # The release's d_score.py reads the files itself: the paper's IFG, and MSE_irr of images it resizes.
        irr_files = "mse_irr" in sums and irr_size is not None and img_size > irr_size
        rel = None
        if irr_files or (paper_ifg and "ifg" in sums):
            rel = release_scores([f for _, _, f in chunk], [r for _, r, _ in chunk],
                                 nets["ifg"] if paper_ifg else None, components if irr_files else None)
        for m in sums:
            if m == "mse":
                v = METRICS["mse"](real, fake)
            elif m == "psnr":
                v = METRICS["psnr"](real, fake, minmax=minmax)
            elif m == "ssim":
                v = METRICS["ssim"](real, fake, variant=ssim_variant, minmax=minmax)
            elif m == "lpips":
                v = METRICS["lpips"](real, fake, model=nets["lpips"])
            elif m == "mse_irr":
                v = rel.mse_irr if irr_files else METRICS["mse_irr"](real, fake, components, size=irr_size)
            elif m == "ifg" and paper_ifg:
                v = rel.ifg
            elif m == "ifg":
                v = METRICS["ifg"](nets["ifg"], fake, real, batch_size=1)  # one image at a time
            elif m == "arc_dis":
                v = METRICS["arc_dis"](nets["arc_dis"], real, fake)
            else:  # attr_acc, on the edits
                v = METRICS["attr_acc"](nets["attr_acc"], fake, attribute, target)
            # The release weights every per-batch value by its batch size (a NaN, e.g. Arc-dis of a
            # batch without detected faces, is left out).
            w = float(n) if weighted else 1.0
            if not math.isnan(v):
                sums[m] += v * w
                weights[m] += w
        if fid_sets is not None:
            fid_sets[0].add(real.to(device))
            fid_sets[1].add(fake.to(device))
        bar.update(n)
    bar.close()

    results = {m: (sums[m] / weights[m] if weights[m] else float("nan")) for m in sums}
    if fid_sets is not None:
        results["fid"] = frechet_distance(*fid_sets[0].statistics(), *fid_sets[1].statistics())
    return {m: results[m] for m in metrics}, img_size


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    notice = lambda m: print(m, file=sys.stderr)  # noqa: E731
    metrics = parse_metrics(args.metrics, args.components)
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    if args.size is not None and args.size < 16:
        raise UserError("--size must be at least 16")
    if "mse_irr" in metrics and not args.components:
        raise UserError("mse_irr needs --components (the edited components, e.g. mouth or eyes)")
    if args.components:
        component_indices(args.components)  # fails early on unknown names
    device = resolve_device(args.device)

    # Everything a metric needs, before reading the images.
    extra = {}
    if "lpips" in metrics:
        extra["lpips"] = lpips_model("pretrained", args.lpips_vgg, device)
    if "fid" in metrics:
        extra["fid"] = inception_features(args.inception, device=device)
    if "ifg" in metrics:
        if not args.discriminator:
            raise UserError("ifg needs --discriminator PATH: the release's latest.pt (a 256-px rosinality StyleGAN2) "
                            "for the paper's IFG, or a checkpoint with a discriminator, another StyleGAN2 file or a "
                            "TorchScript module with --trust_code")
        extra["ifg"] = load_discriminator(args.discriminator, device, args.trust_code)
    paper_ifg = "ifg" in extra and discriminator_kind(extra["ifg"]) == "release"
    irr_size = None if args.mse_irr_full_size else MSE_IRR_SIZE
    if "arc_dis" in metrics:
        extra["arc_dis"] = load_arcface(args.arcface, device, args.trust_code)
    if "attr_acc" in metrics:
        if not args.classifier or not args.attribute:
            raise UserError("attr_acc needs --classifier PATH and --attribute NAME")
        clf = load_classifier(args.classifier, device)
        clf.index(args.attribute)
        extra["attr_acc"] = clf

    order = read_list_entries(args.list) if args.list else None
    pairs = pair_files(args.real, args.fake, notice, order)
    if args.json:
        check_json_path(args.json, args, pairs)
    if _same_file(Path(args.real), Path(args.fake)):
        notice(f"notice: --real and --fake are the same folder ({args.real}): every image is compared with itself "
               "(MSE 0, PSNR 100)")
    elif all(_same_file(r, f) for _, r, f in pairs):
        notice(f"notice: every --real image is the same file as its --fake image ({len(pairs)} pairs): every image is "
               "compared with itself (MSE 0, PSNR 100)")
    minmax = not args.no_minmax
    results, img_size = compare_pairs(
        pairs, metrics, extra, components=args.components, batch_size=args.batch_size, minmax=minmax,
        ssim_variant=args.ssim_variant, weighted=not args.unweighted_batches, size=args.size, resize=args.resize,
        irr_size=irr_size, attribute=args.attribute, target=bool(args.target), device=device, notice=notice)
    labels = {}
    if "ifg" in metrics:
        labels["ifg"] = ifg_label(extra["ifg"], from_files=paper_ifg)
    if "mse_irr" in metrics:
        labels["mse_irr"] = mse_irr_label(img_size, irr_size)
    print(f"{len(pairs)} pairs ({args.real} vs {args.fake})")
    for m, v in results.items():
        print(f"{m:8s} {v:.6g}" + (f"  {labels[m]}" if m in labels else ""))
    if args.json:
        out = {"real": str(args.real), "fake": str(args.fake), "pairs": len(pairs), "batch_size": args.batch_size,
               "components": args.components, "metrics": results, "labels": labels,
               "discriminator": ({"path": str(args.discriminator), "kind": discriminator_kind(extra["ifg"])}
                                 if "ifg" in extra else None),
               "conventions": {"minmax": minmax, "ssim_variant": args.ssim_variant,
                               "weighted_batches": not args.unweighted_batches, "resize": args.resize,
                               "list": args.list, "mse_irr_size": irr_size}}
        write_json_atomic(Path(args.json), json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
