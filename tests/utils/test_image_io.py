"""Images read as a viewer shows them (utils/image_io.py; hostile inputs, issue 15): EXIF
orientation, every PIL mode over its real range, the decompression-bomb limit checked from the
header without touching PIL's process-wide setting."""
import numpy as np
import pytest
from PIL import Image


def test_exif_rotated_jpeg_equals_its_upright_png(tmp_path):
    from utils.image_io import read_rgb_array

    y, x = np.mgrid[0:40, 0:60]
    upright = np.stack([x * 4, y * 6, (x + y) * 2], -1).astype(np.uint8)
    Image.fromarray(upright).save(tmp_path / "up.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "phone.jpg", quality=100,
                                                                        subsampling=0, exif=exif)
    a, b = read_rgb_array(tmp_path / "phone.jpg"), read_rgb_array(tmp_path / "up.png")
    assert a.shape == b.shape == (40, 60, 3)
    assert np.abs(a.astype(int) - b).max() <= 3  # JPEG rounding only

def test_every_image_mode_is_read_over_its_real_range(tmp_path):
    from utils.image_io import read_rgb_array

    a8 = (np.arange(24 * 16) % 256).astype(np.uint8).reshape(16, 24)
    Image.fromarray(a8).save(tmp_path / "g8.png")
    ref = read_rgb_array(tmp_path / "g8.png")
    Image.fromarray(a8.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit grayscale
    Image.fromarray(a8.astype(np.float32) / 255).save(tmp_path / "f.tif")  # 32-bit float in [0, 1]
    Image.fromarray((a8.astype(np.int64) * (2 ** 31 - 1) // 255).astype(np.int32)).save(tmp_path / "i.tif")
    for name in ("g16.png", "f.tif", "i.tif"):
        assert np.array_equal(read_rgb_array(tmp_path / name), ref), name
    # Palette with transparency, LA and CMYK as a viewer shows them (alpha over white).
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    rgba[0, 0] = (10, 20, 30, 255)
    p = Image.fromarray(rgba[..., :3]).quantize(4)
    p.info["transparency"] = p.getpixel((1, 1))
    p.save(tmp_path / "p.png", transparency=p.getpixel((1, 1)))
    got = read_rgb_array(tmp_path / "p.png")
    assert tuple(got[1, 1]) == (255, 255, 255) and tuple(got[0, 0]) == (10, 20, 30)
    Image.fromarray(np.stack([a8, np.full_like(a8, 255)], -1), "LA").save(tmp_path / "la.png")
    assert np.array_equal(read_rgb_array(tmp_path / "la.png"), ref)
    Image.new("CMYK", (2, 2), (0, 0, 0, 0)).save(tmp_path / "c.jpg", quality=100)
    assert read_rgb_array(tmp_path / "c.jpg").min() >= 250  # no ink is white
    Image.fromarray(np.full((2, 2), 2.0, np.float32)).save(tmp_path / "over.tif")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        read_rgb_array(tmp_path / "over.tif")

def test_opening_a_photo_leaves_pil_max_image_pixels_unchanged(tmp_path, monkeypatch):
    """PIL's decompression-bomb limit is process-wide (web editor threads share it): the one image
    opener checks its own limit from the header and never writes ``PIL.Image.MAX_IMAGE_PIXELS``,
    not even for a moment, also when a photo's limit is above PIL's."""
    import types

    import PIL.Image

    from editing.align import load_photo
    from utils.errors import ImageError
    from utils.image_io import open_rgb

    Image.fromarray(np.zeros((64, 48, 3), np.uint8)).save(tmp_path / "photo.png")
    opened = Image.open(tmp_path / "photo.png")  # header only: a PIL image to read below
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)  # the photo is 3x PIL's limit
    writes = []

    class Watched(types.ModuleType):
        def __setattr__(self, name, value):
            if name == "MAX_IMAGE_PIXELS":
                writes.append(value)
            super().__setattr__(name, value)

    monkeypatch.setattr(PIL.Image, "__class__", Watched)
    assert load_photo(tmp_path / "photo.png").shape == (64, 48, 3)  # its own limit, 80 megapixels
    assert load_photo(opened).shape == (64, 48, 3)
    with pytest.raises(ImageError, match="too large"):  # PIL's limit, when the caller names none
        open_rgb(tmp_path / "photo.png")
    assert open_rgb(tmp_path / "photo.png", max_pixels=64 * 48).size == (48, 64)
    assert writes == [] and PIL.Image.MAX_IMAGE_PIXELS == 1000


def test_canonical_id_drops_zero_padding_of_ascii_ids_only():
    from utils.image_io import canonical_id
    assert canonical_id("07070") == "7070" and canonical_id("0") == "0"
    assert canonical_id("face_01") == "face_01"
    assert canonical_id("²") == "²" and canonical_id("０１") == "０１"  # digits int() would refuse or reread
