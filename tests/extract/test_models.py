"""Model specs: what each family's features are, checked against the network itself; the
loader registry; safe loading of files; every error `tpred.extract.models` raises."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tpred.extract import (
    LOADERS,
    HookedModel,
    MissingExtraError,
    default_name,
    load_model,
    parse_spec,
    register_loader,
    resolve_device,
)


def _images(n: int = 3, size: int = 32, channels: int = 3) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(0))


def test_timm_features_are_the_pre_logits_and_logits_the_output():
    model = load_model("timm:resnet18", pretrained=False, image_size=32)
    x = _images()
    out = model.forward(x)
    with torch.no_grad():
        ref_feats = model.module.forward_head(model.module.forward_features(x),
                                              pre_logits=True)
        ref_logits = model.module(x)
    assert model.head == "fc" and out.features.shape == (3, 512)
    torch.testing.assert_close(out.features, ref_feats)
    torch.testing.assert_close(out.logits, ref_logits)
    assert model.num_parameters == sum(p.numel() for p in model.module.parameters())
    assert model.preprocessing.startswith("convert('RGB')") and "(32, 32)" in model.preprocessing


def test_torchvision_head_is_found_and_layer_override_gives_the_same_vector():
    model = load_model("torchvision:resnet18", pretrained=False, image_size=32)
    pooled = load_model("torchvision:resnet18", pretrained=False, image_size=32,
                        layer="avgpool")
    x = _images()
    out, via_layer = model.forward(x), pooled.forward(x)
    assert model.head == "fc" and model.layer == "input of fc"
    assert pooled.layer == "output of avgpool"
    torch.testing.assert_close(out.features, via_layer.features)   # [3, 512, 1, 1] flattened
    torch.testing.assert_close(out.logits, via_layer.logits)
    assert model.describe()["source_labels"] == ""                 # random weights: no labels


def test_features_are_differentiable_for_fine_tuning():
    model = load_model("torchvision:resnet18", pretrained=False, image_size=32).train()
    x = _images(2)
    model.features(x).sum().backward()
    assert model.module.layer1[0].conv1.weight.grad.abs().sum() > 0


def test_a_network_without_a_linear_output_asks_for_layer():
    body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = HookedModel(body, spec="toy:conv", library="toy", modality="image",
                        transform=None, collate=None, preprocessing="", architecture="conv",
                        architecture_family="conv", pretrained=None)
    with pytest.raises(ValueError, match="no classifier head detected.*--layer NAME"):
        model.forward(_images(2, 8))
    by_layer = HookedModel(body, layer="2", spec="toy:conv", library="toy", modality="image",
                           transform=None, collate=None, preprocessing="", architecture="conv",
                           architecture_family="conv", pretrained=None)
    out = by_layer.forward(_images(2, 8))
    assert out.features.shape == (2, 4) and out.logits is None


def test_unknown_layer_and_head_names_are_errors(tiny_net):
    with pytest.raises(ValueError, match="no module named 'pool5' for layer"):
        load_model("torchvision:resnet18", pretrained=False, layer="pool5")
    with pytest.raises(ValueError, match="no module named 'clf' for the head"):
        HookedModel(tiny_net(), head="clf", spec="toy:x", library="toy", modality="image",
                    transform=None, collate=None, preprocessing="", architecture="t",
                    architecture_family="t", pretrained=None)


def test_torchscript_file_gives_the_input_of_its_linear_head(script_file, tiny_net):
    model = load_model(f"torch:{script_file}", image_size=8)
    reference = tiny_net()
    reference.load_state_dict(model.module.state_dict())
    x = _images(2, 8, channels=1).requires_grad_()
    out = model.forward(x)
    expected = torch.flatten(reference.pool(torch.relu(reference.conv(x))), 1)
    torch.testing.assert_close(out.features, expected)
    torch.testing.assert_close(out.logits, reference(x))
    out.features.sum().backward()                                  # differentiable too
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert model.name == "tinynet" and model.architecture == "TinyNet"
    assert model.preprocessing.startswith("convert('L')")          # 1-channel first conv
    assert model.describe()["pretrained"] == ""                    # unknown for a file
    with pytest.raises(ValueError, match="not supported for TorchScript"):
        load_model(f"torch:{script_file}", layer="conv")


def test_torchscript_without_a_linear_output_is_an_error(tmp_path):
    path = tmp_path / "conv.pt"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten())), str(path))
    with pytest.raises(ValueError, match="does not end in a linear layer.*aten::flatten"):
        load_model(f"torch:{path}")


def test_a_pickled_module_loads_only_with_trust(pickled_file, tiny_net):
    with pytest.raises(ValueError, match="arbitrary code.*--trust"):
        load_model(f"torch:{pickled_file}")
    model = load_model(f"torch:{pickled_file}", trust=True, image_size=8)
    assert isinstance(model.module, tiny_net)
    assert model.forward(_images(2, 8, channels=1)).features.shape == (2, 16)


def test_state_dicts_garbage_and_missing_files_are_errors(tmp_path, tiny_net):
    torch.save(tiny_net().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="holds a state dict \\(4 entries\\), not a model"):
        load_model(f"torch:{tmp_path / 'weights.pt'}")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(ValueError, match="not a TorchScript or torch.save archive"):
        load_model(f"torch:{tmp_path / 'junk.pt'}")
    with pytest.raises(ValueError, match="no such file"):
        load_model(f"torch:{tmp_path / 'absent.pt'}")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="holds a list, not an nn.Module"):
        load_model(f"torch:{tmp_path / 'list.pt'}")


def test_hf_image_classifier_features_are_the_normalised_cls_token(tiny_vit):
    from PIL import Image

    model = load_model(f"hf:{tiny_vit}")
    image = Image.fromarray(np.arange(16 * 16, dtype=np.uint8).reshape(16, 16), mode="L")
    batch = model.collate([model.transform(image), model.transform(image)])   # [2, 3, 16, 16]
    out = model.forward(batch)
    with torch.no_grad():
        hidden = model.module.vit(pixel_values=batch).last_hidden_state     # [2, T, 32]
    torch.testing.assert_close(out.features, hidden[:, 0])
    assert out.logits.shape == (2, 5) and model.head == "classifier"
    assert model.source_labels == tuple(f"source{i}" for i in range(5))
    assert model.architecture_family == "vit" and model.name == "tiny-vit"


def test_hf_text_classifier_features_are_the_pooler_output(tiny_bert):
    model = load_model(f"hf:{tiny_bert}")
    batch = model.collate(["the goal and the team", "soup"])
    out = model.forward(batch)
    with torch.no_grad():
        pooled = model.module.bert(**batch).pooler_output                  # [2, 32]
    torch.testing.assert_close(out.features, pooled)
    assert out.logits.shape == (2, 3)
    assert model.source_labels is None              # default LABEL_i names are not invented
    assert model.modality == "text" and "max_length 64" in model.preprocessing


def test_sentence_transformer_folder_uses_its_mean_pooling_and_normalisation():
    from tpred.text import TransformersEncoder, packaged_model_dir

    folder = packaged_model_dir()
    model = load_model(f"hf:{folder}")
    texts = ["a short sentence", "another, somewhat longer sentence about the weather"]
    with torch.no_grad():
        feats = model.forward(model.collate(texts)).features
    reference = TransformersEncoder(folder, local_files_only=True)(texts)   # mean pooling
    torch.testing.assert_close(feats, nn.functional.normalize(reference, dim=-1))
    assert "mean pooling" in model.layer and "L2-normalised" in model.layer
    assert model.forward(model.collate(texts)).logits is None


def test_random_weights_are_seeded():
    a = load_model("timm:resnet18", pretrained=False, seed=3, image_size=32)
    b = load_model("timm:resnet18", pretrained=False, seed=3, image_size=32)
    c = load_model("timm:resnet18", pretrained=False, seed=4, image_size=32)
    assert torch.equal(a.module.fc.weight, b.module.fc.weight)
    assert not torch.equal(a.module.fc.weight, c.module.fc.weight)


def test_remote_code_needs_trust(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "my-custom", "architectures": ["MyModel"],
         "auto_map": {"AutoConfig": "configuration_my.MyConfig"}}))
    (tmp_path / "configuration_my.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ValueError, match="needs its own code.*--trust"):
        load_model(f"hf:{tmp_path}")


def test_spec_prefixes_registry_and_names(tiny_net):
    assert parse_spec("timm:resnet18") == ("timm", "resnet18")
    with pytest.raises(ValueError, match="Could not resolve prefix 'keras' among choices"):
        load_model("keras:resnet")
    with pytest.raises(ValueError, match="must be PREFIX:NAME"):
        load_model("resnet18")
    register_loader("toy", lambda ref, opts: HookedModel(
        tiny_net(), head="fc", spec="", library="toy", modality="image", transform=None,
        collate=None, preprocessing="", architecture=ref, architecture_family="toy",
        pretrained=opts.pretrained))
    try:
        model = load_model("toy:tiny", pretrained=False)
        assert model.spec == "toy:tiny" and model.name == "tiny" and not model.pretrained
        with pytest.raises(ValueError, match="already registered"):
            register_loader("toy", lambda ref, opts: None)
    finally:
        LOADERS.pop("toy")
    with pytest.raises(ValueError, match="lower-case word"):
        register_loader("Bad Prefix", lambda ref, opts: None)
    assert default_name("hf:google/vit-base-patch16-224") == "google__vit-base-patch16-224"
    assert default_name("torch:/some/where/my model.pt") == "my_model"
    assert default_name("timm:vit_small_patch16_224.augreg_in21k") == \
        "vit_small_patch16_224.augreg_in21k"


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="must be cpu, cuda, cuda:N or auto"):
        resolve_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="image_size must be >= 1"):
        load_model("timm:resnet18", pretrained=False, image_size=0)


def test_a_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now fails as if absent
    with pytest.raises(MissingExtraError, match=r"needs the package 'timm'.*tpred\[extract\]"):
        load_model("timm:resnet18", pretrained=False)


def test_unknown_architectures_are_errors():
    with pytest.raises(ValueError, match="timm:no_such_net"):
        load_model("timm:no_such_net", pretrained=False)
    with pytest.raises(ValueError, match="torchvision:no_such_net: unknown model"):
        load_model("torchvision:no_such_net", pretrained=False)


def test_a_torch_export_archive_loads_only_with_trust(tmp_path, tiny_net):
    net = tiny_net().eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (_images(2, 8, channels=1),),
                                  dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, tmp_path / "tiny.pt2")
    with pytest.raises(ValueError, match="torch.export archive.*--trust"):
        load_model(f"torch:{tmp_path / 'tiny.pt2'}")
    model = load_model(f"torch:{tmp_path / 'tiny.pt2'}", trust=True, image_size=8)
    x = _images(3, 8, channels=1)
    out = model.forward(x)
    torch.testing.assert_close(out.features, torch.flatten(net.pool(torch.relu(net.conv(x))), 1))
    torch.testing.assert_close(out.logits, net(x))
    assert model.head == "fc"
