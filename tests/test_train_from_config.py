"""Training from a config (`dilnet.training.train_from_config`), the one label-range check
(`dilnet.model.data.check_labels`), the named augmentations and the plug-in registry.

Oracles: the checkpoint read back from disk, a fresh model's initial weights and the pretrained
file's own arrays, Dice and min-max scaling written out with numpy here, the cosine schedule's
formula, and the zoo recipe's former augmentation written as a plain function."""

import json
import math
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import dilnet
from dilnet import plugins
from dilnet.errors import ConfigError, SpecError, VolumeError
from dilnet.io.train_config import NORMALIZE, augment_from_config, train_config_from_dict
from dilnet.io.weights import read_checkpoint
from dilnet.model import Model, PatchSampler, load_model
from dilnet.model.augment import Augment
from dilnet.model.contract import InputContract
from dilnet.model.data import AUGMENTATIONS, NORMALIZATIONS, augmentation, check_labels, normalize
from dilnet.training import spec_from_ref, train_from_config

B = dilnet.blocks


def tiny_spec(num_classes=3, channels=1):
    return dilnet.Sequential([
        B.Input(channels=channels, spatial=(None, None, None)),
        B.Conv(filters=3, kernel=3),
        B.DilatedStack(filters=3, dilations=(1, 2)),
        B.Classifier(num_classes=num_classes),
    ])  # fmt: skip


def volume(seed, size=12):
    """A (1, size, size, size) image with intensities in [20, 220] and its 3 classes."""
    rng = np.random.default_rng(seed)
    image = rng.random((1, size, size, size)) * 200 + 20
    labels = np.digitize(image[0], [80, 160]).astype(np.int64)
    return image.astype(np.float32), labels


def config(**changes):
    base = {
        "format": "dilnet.train",
        "format_version": 1,
        "model": dilnet.to_config(tiny_spec()),
        "train": [{"image": "a.npy", "labels": "a-labels.npy"}],
        "validation": [{"image": "b.npy", "labels": "b-labels.npy"}],
        "patch_size": [8],
        "batch_size": 2,
        "epochs": 2,
        "steps_per_epoch": 1,
        "validation_steps": 1,
        "learning_rate": 0.01,
        "schedule": "cosine",
        "normalize": "minmax",
        "seed": 3,
        "output": "out.npz",
    }
    return {**base, **changes}


@pytest.fixture
def files(tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        image, labels = volume(seed)
        np.save(tmp_path / f"{name}.npy", image[0])  # one channel: (Z, Y, X) on disk
        np.save(tmp_path / f"{name}-labels.npy", labels.astype(np.uint8))
    return tmp_path


def dice(prediction, labels, classes):
    out = []
    for c in range(classes):
        p, t = prediction == c, labels == c
        out.append(2 * np.sum(p & t) / (np.sum(p) + np.sum(t)))
    return out


# ---------------------------------------------------------------------------------------------
# check_labels


def test_check_labels_accepts_classes_and_the_ignore_label():
    labels = np.array([[0, 1], [2, 255]])
    check_labels(labels, 3, ignore_label=255)
    check_labels(labels[:1], 2)
    check_labels(np.zeros((0, 4), np.int64), 1)  # nothing to check


def test_check_labels_messages():
    labels = np.array([9, 3, -1, 2, 3, 7, 5, 6, 4])
    with pytest.raises(ConfigError) as err:
        check_labels(labels, 3, where="Model.fit", name="labels[1]")
    # the values outside 0..2, sorted, at most five of them
    assert str(err.value) == (
        "Model.fit: invalid value for `labels[1]`. Expected values 0..2; received "
        "labels[1]=[-1, 3, 4, 5, 6]."
    )
    with pytest.raises(ConfigError) as err:
        check_labels(np.array([0, 255, 4]), 4, ignore_label=255, where="f", hint="Do this.")
    assert str(err.value) == (
        "f: invalid value for `labels`. Expected values 0..3 or ignore_label=255; received "
        "labels=[4]. Do this."
    )
    # the ignore label is allowed only where it is given
    with pytest.raises(ConfigError, match=r"Expected values 0..3; received labels=\[255\]"):
        check_labels(np.array([0, 255]), 4)


def test_normalize_minmax_and_percentile_per_channel():
    rng = np.random.default_rng(7)
    image = np.stack([rng.random((3, 4, 5)) * 50 + 7, rng.random((3, 4, 5)) * 3 - 1])
    image[1, 0] = 0  # background: left out of the percentiles
    scaled = normalize(image, "minmax")
    assert scaled.dtype == np.float32
    for c in range(2):  # over all voxels, background included
        low, high = image[c].min(), image[c].max()
        np.testing.assert_allclose(scaled[c], (image[c] - low) / (high - low), atol=1e-6)
    scaled = normalize(image, "percentile")
    for c in range(2):
        nonzero = np.sort(image[c][image[c] != 0])

        # numpy's linear percentile written out: position q/100 * (n - 1) between order stats
        def at(q, v=nonzero):
            pos = q / 100 * (v.size - 1)
            k = int(pos)
            return v[k] + (pos - k) * (v[min(k + 1, v.size - 1)] - v[k])

        low, high = at(0.5), at(99.5)
        expected = np.clip((image[c] - low) / (high - low), 0, 1)
        np.testing.assert_allclose(scaled[c], expected, atol=1e-6)
    np.testing.assert_array_equal(normalize(image, "none"), image.astype(np.float32))
    # a constant channel has no range to scale: refused, as at inference
    with pytest.raises(VolumeError, match=r"normalize: .*constant image"):
        normalize(np.full((1, 3, 4, 5), 2.0), "minmax")
    with pytest.raises(ConfigError, match=r"normalize: invalid value for `how`"):
        normalize(image, "zscore")
    assert NORMALIZE == NORMALIZATIONS  # what configs name is what normalize applies


# ---------------------------------------------------------------------------------------------
# augmentation


def recipe_augment(x, y, rng):
    """The zoo recipe's augmentation before it became named steps."""
    x = x * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
    for axis in range(1, x.ndim):
        weight = rng.uniform(0.0, 0.5)
        index = np.clip(np.arange(x.shape[axis]) + rng.choice((-1, 1)), 0, x.shape[axis] - 1)
        x = (1 - weight) * x + weight * np.take(x, index, axis=axis)
    x = x + rng.normal(0.0, 0.02, x.shape)
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[::-1]
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)


def test_named_augmentation_is_the_recipes_former_function():
    augment = augmentation(["intensity", "subvoxel_shift", "noise", "flip0"], rank=3)
    x, y = volume(4, size=6)
    flipped = 0
    for seed in range(8):
        got = augment(x.copy(), y.copy(), np.random.default_rng(seed))
        expected = recipe_augment(x.copy(), y.copy(), np.random.default_rng(seed))
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        assert got[0].dtype == np.float32 and got[0].flags.c_contiguous
        flipped += not np.array_equal(got[1], y)
    assert 0 < flipped < 8  # half of the time, more or less
    assert augmentation([]) is None


def test_the_synthseg_augment_form_round_trips_and_builds_the_augment():
    for form, fields in (("synthseg", {}),
                         ({"synthseg": {"p_tissue": 0.5, "scale": [0.9, 1.1]}},
                          {"p_tissue": 0.5, "scale": (0.9, 1.1)}),
                         ({"synthseg": {}}, {})):  # fmt: skip
        parsed = train_config_from_dict(config(augment=form))
        assert parsed.augment == form
        assert train_config_from_dict(json.loads(json.dumps(parsed.to_dict()))) == parsed
        assert augment_from_config(parsed.augment, rank=3) == Augment(**fields)
    assert augment_from_config(("noise",)) is None  # named steps: `augmentation` builds them


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ("synthseq", r"\$\.augment: expected a list of steps among intensity, .*, 'synthseg' or "
                     r"\{'synthseg': \{\.\.\.\}\} \(did you mean 'synthseg'\?\); received 'synthseq'"),
        ({"synth": {}}, r"\$\.augment: expected one key, 'synthseg' .*; received keys \['synth'\]"),
        ({"synthseg": 3}, r"\$\.augment\.synthseg: expected an object of Augment fields; "
                          r"received 3"),
        ({"synthseg": {"p_tisue": 0.5}}, r"\$\.augment\.synthseg: unknown field 'p_tisue' "
                                         r"\(did you mean 'p_tissue'"),
        ({"synthseg": {"rotation": -1}}, r"\$\.augment\.synthseg\.rotation: expected a number "
                                         r"in \[0, 180\]; received -1"),
        ({"synthseg": {"scale": [2, 1]}}, r"\$\.augment\.synthseg\.scale: expected a pair "
                                          r"\(low, high\) with 0\.1 <= low <= high <= 10; "
                                          r"received \[2, 1\]"),
        ({"synthseg": {"normalize": "yes"}}, r"\$\.augment\.synthseg\.normalize: expected True "
                                             r"or False; received 'yes'"),
        (5, r"\$\.augment: expected a list of strings or a string or dict; received 5"),
    ],
)  # fmt: skip
def test_bad_synthseg_augment_forms_are_reported_with_their_path(form, message):
    with pytest.raises(SpecError, match=message):
        train_config_from_dict(config(augment=form))


def test_every_bad_synthseg_field_is_reported_at_once():
    with pytest.raises(SpecError) as err:
        train_config_from_dict(config(augment={"synthseg": {"p_noise": 2, "shear": -1}}))
    assert "(2 problems)" in str(err.value)
    assert "$.augment.synthseg.p_noise: expected a probability in [0, 1]; received 2" in str(
        err.value
    )
    with pytest.raises(SpecError, match=r"\$\.augment\.synthseg\.flip_axes: expected axes "
                       r"below 2 \(a 2D model\); received \[2\]"):  # fmt: skip
        augment_from_config({"synthseg": {"flip_axes": [2]}}, rank=2)


def test_augmentation_names_are_checked():
    with pytest.raises(ConfigError, match=r"Expected names among intensity, subvoxel_shift, "
                       r"noise, flip0, flip1; received names=\['flip2'\]"):  # fmt: skip
        augmentation(["flip2"], rank=2)
    with pytest.raises(ConfigError, match=r"`names`"):
        augmentation("noise")
    with pytest.raises(SpecError, match=r"\$.augment\[1\]: expected one of intensity, .* \(did "
                       r"you mean 'noise'\?\); received 'nose'"):  # fmt: skip
        train_config_from_dict(config(augment=["flip0", "nose"]))
    assert set(AUGMENTATIONS) == {"intensity", "subvoxel_shift", "noise", "flip0", "flip1",
                                  "flip2"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# train_from_config


def test_train_from_config_saves_what_it_returns(files):
    notes = []
    model, record = train_from_config(config(), base=files, verbose=0, log=notes.append)
    output = files / "out.npz"
    # the checkpoint holds the returned model's weights, and the record
    loaded = load_model(output)
    names = [p.name for p in model.params]
    assert [p.name for p in loaded.params] == names
    for name, a, b in zip(names, model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    _, manifest = read_checkpoint(output)
    assert manifest["metadata"]["training"] == json.loads(json.dumps(record))
    assert manifest["metadata"]["preprocessing"] == {"normalize": "minmax"}
    assert record["config"] == train_config_from_dict(config()).to_dict()
    assert record["dilnet_version"] == dilnet.__version__ and record["pretrained_skipped"] == []
    # two epochs, the cosine schedule from 0.01 to 0.01 / 20 over them
    history = record["history"]
    assert {"loss", "dice", "val_loss", "val_dice", "lr"} <= set(history)
    assert all(len(values) == 2 for values in history.values())
    final = 0.01 / 20
    expected = [final + 0.5 * (0.01 - final) * (1 + math.cos(math.pi * e / 2)) for e in (0, 1)]
    np.testing.assert_allclose(history["lr"], expected, rtol=1e-6)
    # the validation Dice is the Dice of the whole min-max scaled validation volume
    image, labels = volume(2)
    scaled = (image - image.min()) / (image.max() - image.min())
    prediction = model.predict(scaled[None])[0].argmax(axis=0)
    np.testing.assert_allclose(
        record["validation_dice_whole_volumes"], dice(prediction, labels, 3), rtol=1e-6
    )
    assert any(n.startswith("training the inline spec:") and "1 volume(s)" in n for n in notes)
    assert notes[-1].startswith("trained in") and notes[-1].endswith(str(output))
    # an existing output is kept unless overwrite=True
    before = output.read_bytes()
    with pytest.raises(VolumeError, match=r"out\.npz: exists; pass overwrite=True"):
        train_from_config(config(), base=files, verbose=0)
    assert output.read_bytes() == before


def test_equal_seeds_equal_runs_and_augmentation_changes_the_run(files):
    first, _ = train_from_config(config(epochs=1, validation=[]), base=files, verbose=0)
    again, record = train_from_config(config(epochs=1, validation=[]), base=files,
                                      overwrite=True, verbose=0)  # fmt: skip
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert "validation_dice_whole_volumes" not in record and "val_loss" not in record["history"]
    augmented, _ = train_from_config(config(epochs=1, validation=[], augment=["noise"]),
                                     base=files, overwrite=True, verbose=0)  # fmt: skip
    assert any(not np.array_equal(a, b) for a, b in
               zip(first.get_weights(), augmented.get_weights(), strict=True))  # fmt: skip


def test_synthseg_training_augments_patches_of_the_whole_volumes(files, monkeypatch):
    drawn = []
    sample = PatchSampler.sample

    def spy(self):  # the training sampler's augment and its patches
        batch = sample(self)
        drawn.append((self.augment, batch))
        return batch

    monkeypatch.setattr(PatchSampler, "sample", spy)
    contract = InputContract(normalization="percentile", low=1, high=99)
    form = {"synthseg": {"p_affine": 1, "normalize": False}}
    _, record = train_from_config(config(epochs=1, validation=[], augment=form,
                                             normalize="percentile"), base=files, verbose=0,
                                      input_contract=contract)  # fmt: skip
    augment, (x, y) = drawn[0]
    assert augment == Augment(p_affine=1, normalize=False)
    assert x.shape == (2, 1, 8, 8, 8) and set(np.unique(y)) <= {0, 1, 2}
    # the model file carries the contract its volumes were scaled by
    assert load_model(files / "out.npz").input_contract == contract
    assert record["config"]["augment"] == form
    with pytest.raises(ConfigError, match=r"\$\.normalize: expected 'percentile', the "
                       r"normalization of the input_contract .*; received 'minmax'"):  # fmt: skip
        train_from_config(config(), base=files, verbose=0, overwrite=True, input_contract=contract)


def test_label_files_are_checked_against_the_model(files):
    _, labels = volume(1)
    labels[0, 0, 0] = 5
    np.save(files / "bad.npy", labels)
    bad = config(train=[{"image": "a.npy", "labels": "bad.npy"}], validation=[])
    with pytest.raises(ConfigError) as err:
        train_from_config(bad, base=files, verbose=0)
    assert str(err.value) == (
        f"{files / 'bad.npy'}: invalid value for `labels`. Expected values 0..2; received "
        "labels=[5]. The model has 3 classes: set num_classes in the model (or ignore_label in "
        "the config for voxels without a class)."
    )
    # with the label as ignore_label the same file trains
    train_from_config({**bad, "ignore_label": 5}, base=files, verbose=0)
    assert not (files / "model.npz").exists() and (files / "out.npz").is_file()


# ---------------------------------------------------------------------------------------------
# a registered model source: pretrained weights and fine-tuning for a new num_classes


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A fresh registry with the model source ``test:tiny`` (3 classes, pretrained weights of
    seeded random values) and the training data ``cubes``."""
    monkeypatch.setattr(plugins, "_registry", plugins.Registry())
    pretrained = Model(tiny_spec(), seed=11)
    rng = np.random.default_rng(5)
    pretrained.set_weights([rng.normal(size=w.shape).astype(w.dtype)
                            for w in pretrained.get_weights()])  # fmt: skip
    pretrained.save(tmp_path / "tiny.npz")

    def resolve(name, **overrides):
        if name != "tiny":
            raise ConfigError(f"test: no model {name!r}")
        return plugins.SourcedModel(
            spec=tiny_spec(**overrides),
            weights=tmp_path / "tiny.npz",
            defaults={"num_classes": 3, "channels": 1},
            shape_overrides=("num_classes", "channels"),
            normalize="minmax",
        )

    registry = plugins.registry()
    registry.add_model_source(plugins.ModelSource(prefix="test", resolve=resolve))
    train, validation = volume(1), volume(2)
    registry.add_training_data(plugins.TrainingData(
        name="cubes",
        load=lambda: (([train[0]], [np.minimum(train[1], 1)]),
                      ([validation[0]], [np.minimum(validation[1], 1)])),
    ))  # fmt: skip
    return dict(zip([p.name for p in pretrained.params], pretrained.get_weights(), strict=True))


def test_fine_tuning_keeps_the_pretrained_body(tmp_path, source):
    notes = []
    tuned = config(
        model="test:tiny",
        pretrained=True,
        overrides={"num_classes": 2},
        train=[],
        validation=[],
        builtin_data="cubes",
        learning_rate=0.0,
    )  # fmt: skip  (rate 0: the loaded weights stay)
    model, record = train_from_config(tuned, base=tmp_path, verbose=0, log=notes.append)
    head = [p.name for p in model.params if p.name.startswith(model.network.layers[-1].path)]
    assert model.network.output_shape[1] == 2 and len(head) == 2
    assert record["pretrained_skipped"] == head
    assert f"2 parameter(s) of the classifier start from their initial values: {', '.join(head)}" in notes[0]  # fmt: skip
    fresh = Model(tiny_spec(num_classes=2), seed=tuned["seed"])
    fresh = dict(zip([p.name for p in fresh.params], fresh.get_weights(), strict=True))
    for p, value in zip(model.params, model.get_weights(), strict=True):
        expected = fresh[p.name] if p.name in head else source[p.name]
        np.testing.assert_array_equal(value, expected, err_msg=p.name)
    assert len(record["validation_dice_whole_volumes"]) == 2  # the data's validation volume
    # the model with the source's own classes loads every weight
    model, record = train_from_config({**tuned, "overrides": {}}, base=tmp_path,
                                      overwrite=True, verbose=0)  # fmt: skip
    assert record["pretrained_skipped"] == []
    for p, value in zip(model.params, model.get_weights(), strict=True):
        np.testing.assert_array_equal(value, source[p.name], err_msg=p.name)


def test_config_errors_of_sources_and_builtin_data(tmp_path, source):
    where = "train.json"
    cases = [
        (config(model="test:tiny", pretrained=True, overrides={"channels": 2}),
         r"train.json: \$.overrides.channels: expected 1 with pretrained=true"),
        (config(overrides={"num_classes": 2}),
         r"\$.overrides: expected none for a model that is not test:NAME; received"),
        (config(pretrained=True), r"\$.pretrained: expected false for a model that is not test:NAME"),
        (config(model="other:tiny"),
         r"other:tiny: no installed package provides other:NAME models \(registered: test:NAME\)"),
        (config(train=[], validation=[], builtin_data="cubes", model=dilnet.to_config(
            dilnet.Sequential([B.Input(channels=2, spatial=(None, None, None)),
                               B.Classifier(num_classes=2)]))),
         r"\$.builtin_data: 'cubes' holds 1-channel 3D volumes; the model takes 2 channel\(s\)"),
        (config(output="out.nii"), r"\$.output: expected a .npz file; received 'out.nii'"),
        (config(patch_size=[8, 8]), r"\$.patch_size: expected one length or 3 \(a 3D model\)"),
    ]  # fmt: skip
    for bad, message in cases:
        with pytest.raises(ConfigError, match=message):
            train_from_config(bad, base=tmp_path, where=where, verbose=0)
    with pytest.raises(SpecError, match=r"\$.builtin_data: expected one of cubes; received 'mni'"):
        train_config_from_dict(config(train=[], validation=[], builtin_data="mni"))
    with pytest.raises(ConfigError, match=r"nosuch:thing: no installed package provides"):
        spec_from_ref("nosuch:thing")
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["tiny.npz"]  # nothing trained


# ---------------------------------------------------------------------------------------------
# the registry


def test_the_zoo_registers_through_its_entry_point(monkeypatch):
    monkeypatch.setattr(plugins, "_registry", None)
    registry = plugins.registry()
    assert list(registry.model_sources) == ["zoo"]
    assert sorted(registry.commands) == ["demo", "zoo"]
    assert list(registry.training_data) == ["mni152", "mni152-grids"]
    sourced = plugins.resolve_model("zoo:plain3d", num_classes=2)
    assert sourced.spec == __import__("dilnet_zoo").get_spec("plain3d", num_classes=2)
    assert sourced.defaults["num_classes"] == 4 and sourced.normalize == "minmax"
    assert plugins.registry() is registry  # loaded once


def test_a_plugin_that_fails_to_load_is_left_out_with_a_warning(monkeypatch):
    broken = EntryPoint(name="broken", value="no_such_module_xyz:register", group=plugins.GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [broken])
    monkeypatch.setattr(plugins, "_registry", None)
    with pytest.warns(RuntimeWarning, match=r"dilnet plugin 'broken' \(no_such_module_xyz:"
                      r"register\) did not load: ModuleNotFoundError"):  # fmt: skip
        registry = plugins.registry()
    assert registry.model_sources == {} and registry.commands == {}


def test_registering_a_name_twice_is_refused():
    registry = plugins.Registry()
    data = plugins.TrainingData(name="x", load=list)
    registry.add_training_data(data)
    registry.add_training_data(data)  # the same registration again: harmless
    with pytest.raises(ConfigError, match=r"Expected a new training data name; received"):
        registry.add_training_data(plugins.TrainingData(name="x", load=tuple))


def test_one_patch_length_may_be_a_number_as_the_cli_page_says():
    base = {"format": "dilnet.train", "format_version": 1, "model": "zoo:plain3d",
            "builtin_data": "mni152"}  # fmt: skip
    assert train_config_from_dict({**base, "patch_size": 24}).patch_size == (24,)
    assert train_config_from_dict({**base, "patch_size": [24]}).patch_size == (24,)
    with pytest.raises(SpecError, match=r"\$.patch_size"):
        train_config_from_dict({**base, "patch_size": True})
