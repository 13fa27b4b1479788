"""The perceptual loss's network (model/lpips.py): the VGG16 weights are never downloaded, a local
file is used as it is."""
import pytest
import torch

from model.config import ConfigError
from model.lpips import build_lpips


def test_lpips_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(ConfigError, match=r"vgg16-397923af\.pth.*p_loss_weight"):
        build_lpips("pretrained")


@pytest.mark.slow
def test_lpips_loads_local_vgg_file(tmp_path):
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg.pth"
    torch.save(vgg.state_dict(), path)
    model = build_lpips("pretrained", str(path))
    assert torch.equal(getattr(model.net.slice3, "10").weight, vgg.features[10].weight)
    assert not model.training
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert model(a, a).abs().max() < 1e-6 and model(a, b).item() > 0
