"""`digits:` in tpred.extract's registries, and tuning models loaded through tpred.extract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tpred.extract import HookedModel, load_model, open_source
from tpred.tune import TuneConfig, TuneData, tune
from tpred.tune.pipeline import model_inputs
from tpred.zoo.hub import source_network, target_data

MODEL, DATASET = "cnn-s-inverted", "inverted_4c_10"


def test_digits_models_load_through_tpred_extract(small_digits_zoo):
    spec = f"digits:{small_digits_zoo}/{MODEL}"
    loaded = load_model(spec)
    net = source_network(MODEL, small_digits_zoo)
    x = target_data(DATASET, small_digits_zoo).x_train
    with torch.no_grad():
        out = loaded.forward(x)
        torch.testing.assert_close(out.features, net.features(x), rtol=0, atol=0)
        torch.testing.assert_close(out.logits, net(x), rtol=0, atol=0)
    meta = loaded.describe()
    assert meta["spec"] == spec and meta["library"] == "tpred.zoo"
    assert load_model(spec, name=MODEL).name == MODEL
    assert meta["architecture_family"] == "cnn" and meta["num_parameters"] > 0
    assert "digits-inverted" in meta["pretrain_dataset"]
    random = load_model(spec, pretrained=False, seed=3)
    assert not torch.equal(random.module.head.weight, net.head.weight)


def test_digits_data_sources_open_through_tpred_extract(small_digits_zoo):
    data = open_source(f"digits:{small_digits_zoo}/{DATASET}")
    direct = target_data(DATASET, small_digits_zoo)
    assert data.name == DATASET and data.modality == "image"
    assert ", ".join(data.classes) == direct.metadata["labels"]
    assert len(data.train) == 40 and len(data.test) == len(direct.y_test)
    digits = np.array(sorted(set(direct.y_train.tolist())))
    np.testing.assert_array_equal(digits[data.train.labels], direct.y_train.numpy())
    row = data.describe()
    assert (row["num_classes"], row["samples_per_class"], row["train_size"]) == (4, 10, 40)


@pytest.mark.parametrize("spec,match", [
    ("digits:{zoo}/vit-huge", "no model 'vit-huge'"),
    ("digits:/nonexistent/zoo/mlp-weak", "no zoo.json here"),
])
def test_bad_digits_specs_are_clear_errors(small_digits_zoo, spec, match):
    with pytest.raises(ValueError, match=match):
        load_model(spec.format(zoo=small_digits_zoo))


def test_an_image_size_other_than_8_is_an_error(small_digits_zoo):
    with pytest.raises(ValueError, match="digits models read 8×8 images"):
        load_model(f"digits:{small_digits_zoo}/{MODEL}", image_size=32)


def test_tuning_a_loaded_model_equals_tuning_its_network(small_digits_zoo):
    """The tpred.extract path (LoadedModel student and teachers, inputs through their own
    preprocessing) trains exactly the weights of the plain nn.Module path."""
    source = open_source(f"digits:{small_digits_zoo}/{DATASET}")
    specs = [f"digits:{small_digits_zoo}/{m}" for m in (MODEL, "mlp-s-original")]
    loaded = [load_model(s) for s in specs]
    nets = [source_network(m, small_digits_zoo) for m in (MODEL, "mlp-s-original")]
    cfg = TuneConfig(steps=5, batch_size=16, eval_every=0, tradeoff=10.0)
    data = TuneData(model_inputs(loaded[0], source.train), source.train.labels,
                    model_inputs(loaded[0], source.test), source.test.labels)
    via_extract = tune(loaded[0], data, cfg,
                       teachers=[("a", loaded[0]), ("b", lambda: (loaded[1], data.x_train))])
    plain = tune(nets[0], data, cfg, teachers=[("a", nets[0]), ("b", nets[1])])
    np.testing.assert_allclose(via_extract.teachers.pi, plain.teachers.pi, rtol=1e-12)
    a = via_extract.student.state_dict()
    b = plain.student.state_dict()
    renamed = {k.replace("backbone.net.", "backbone."): v for k, v in a.items()}
    # the LoadedModel keeps its source head: untouched (its output is not in the loss)
    assert set(renamed) - set(b) == {"backbone.head.weight", "backbone.head.bias"}
    assert torch.equal(renamed["backbone.head.weight"], nets[0].head.weight)
    assert all(torch.equal(v, renamed[k]) for k, v in b.items())
    assert via_extract.test_accuracy == plain.test_accuracy


class Generic(nn.Module):
    """A network whose classifier is not at a conventional attribute name."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.ReLU())
        self.scores = nn.Linear(12, 10)

    def forward(self, x):
        return self.scores(self.trunk(x))


def test_any_loaded_model_with_a_detected_head_can_be_tuned(small_digits_zoo):
    torch.manual_seed(0)
    module = Generic()
    loaded = HookedModel(module, head="auto", spec="custom:generic", library="custom",
                         modality="image", transform=lambda t: t, collate=torch.stack,
                         preprocessing="none", architecture="Generic",
                         architecture_family="mlp", pretrained=None)
    source = open_source(f"digits:{small_digits_zoo}/{DATASET}")
    data = TuneData(model_inputs(loaded, source.train), source.train.labels,
                    model_inputs(loaded, source.test), source.test.labels)
    result = tune(loaded, data, TuneConfig(steps=30, eval_every=0, tradeoff=1.0, lr=0.01),
                  teachers=[("self", loaded)])
    assert result.student.head.in_features == 12          # the input of `.scores`
    assert result.test_accuracy > 0.5                     # 4 classes: chance is 0.25
    # the split_head path cannot find this head, the hook-based one does
    from tpred.tune import split_head

    with pytest.raises(ValueError, match="no detectable classifier head"):
        split_head(module)


def test_a_loaded_student_without_a_detectable_head_is_an_error(small_digits_zoo):
    headless = HookedModel(nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.ReLU()),
                           head="auto", spec="custom:headless", library="custom",
                           modality="image", transform=lambda t: t, collate=torch.stack,
                           preprocessing="none", architecture="Sequential",
                           architecture_family="mlp", pretrained=None)
    x = torch.zeros(6, 1, 8, 8)
    data = TuneData(x, np.array([0, 1] * 3), x, np.array([0, 1] * 3))
    with pytest.raises(ValueError, match="custom:headless: no classifier head detected"):
        tune(headless, data, TuneConfig(method="finetune", steps=1))
