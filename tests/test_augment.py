"""Random crop with zero padding and horizontal flip: values on hand-made images, the draws, the
refusal of flat inputs, and the ``augment`` option of the config, the TOML file and the flags."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import idx_folder, tiny_arrays

import lifelong as ll
from lifelong.cli import build_comparison, build_run_config, main, make_parser
from lifelong.data.augment import PAD, black, check_images, crop_flip, draw, random_crop_flip

IMAGE = torch.arange(1.0, 37.0).reshape(1, 1, 6, 6)  # pixel (i, j) holds 6i + j + 1


def offsets(*rows):
    return torch.tensor(rows)


def test_offset_zero_shifts_the_image_down_right_by_the_padding_with_zeros():
    out = crop_flip(IMAGE, offsets([0, 0]), torch.tensor([False]))
    expected = torch.zeros(1, 1, 6, 6)
    expected[..., 4:, 4:] = torch.tensor([[1.0, 2.0], [7.0, 8.0]])  # the image's top-left 2×2
    assert torch.equal(out, expected)


def test_offset_pad_is_the_image_itself_and_the_far_corner_shifts_up_left():
    assert torch.equal(crop_flip(IMAGE, offsets([PAD, PAD]), torch.tensor([False])), IMAGE)
    out = crop_flip(IMAGE, offsets([2 * PAD, 2 * PAD]), torch.tensor([False]))
    assert torch.equal(out[0, 0, :2, :2], torch.tensor([[29.0, 30.0], [35.0, 36.0]]))
    assert int((out != 0).sum()) == 4


def test_a_flip_reverses_the_columns_of_the_crop():
    assert torch.equal(crop_flip(IMAGE, offsets([PAD, PAD]), torch.tensor([True])), IMAGE.flip(-1))
    out = crop_flip(IMAGE, offsets([PAD, 0]), torch.tensor([True]))  # shifted right by 4, then mirrored
    assert torch.equal(out[0, 0, 0], torch.tensor([2.0, 1.0, 0.0, 0.0, 0.0, 0.0]))


def test_the_padding_takes_one_fill_value_per_channel_and_black_follows_the_normalisation():
    x, fill = torch.rand(1, 2, 4, 4), torch.tensor([-1.0, -3.0])
    out = crop_flip(x, offsets([0, 0]), torch.tensor([False]), fill=fill)
    assert torch.equal(out[0, 0, :4].flatten().unique(), torch.tensor([-1.0]))  # rows above the image
    assert torch.equal(out[0, 1, :, :4].flatten().unique(), torch.tensor([-3.0]))
    assert torch.equal(crop_flip(x, offsets([PAD, PAD]), torch.tensor([False]), fill=fill), x)
    normalised = {"normalization": {"mean": [0.5, 0.2], "std": [0.25, 0.1]}}
    assert torch.equal(black(normalised), torch.tensor([-2.0, -2.0]))
    assert torch.equal(black({}), torch.zeros(1))


def test_each_example_gets_its_own_window_and_flip_on_every_channel():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 3, 7, 5, generator=g)
    shifts, flips = draw(5, g)
    out = crop_flip(x, shifts, flips)
    padded = F.pad(x, (PAD,) * 4)
    for i in range(5):  # the slow reference: slice the padded image, then mirror
        r, c = shifts[i].tolist()
        window = padded[i, :, r:r + 7, c:c + 5]
        assert torch.equal(out[i], window.flip(-1) if flips[i] else window)


def test_draws_cover_every_offset_and_flip_about_half_and_repeat_with_the_seed():
    shifts, flips = draw(4000, torch.Generator().manual_seed(0))
    assert set(shifts.flatten().tolist()) == set(range(2 * PAD + 1))
    assert 0.45 < flips.float().mean() < 0.55
    x = torch.rand(8, 3, 32, 32)
    first = random_crop_flip(torch.Generator().manual_seed(1))(x)
    assert torch.equal(first, random_crop_flip(torch.Generator().manual_seed(1))(x))
    assert not torch.equal(first, random_crop_flip(torch.Generator().manual_seed(2))(x))


def test_flat_inputs_are_refused_in_one_line():
    with pytest.raises(ll.LifelongError, match="--no-augment") as err:
        random_crop_flip(torch.Generator())(torch.rand(4, 36))
    assert "\n" not in str(err.value)
    with pytest.raises(ll.LifelongError, match=r"image inputs \(c, h, w\)"):
        check_images((36,))


def test_a_run_asking_augmentation_of_flat_inputs_is_refused_before_training():
    x, y = torch.rand(8, 36), torch.tensor([0, 1] * 4)
    stream = ll.Stream("flat", [ll.Task(0, "t0", x, y, x, y, (0, 1))], "domain", (36,), 2)
    model = ll.make_model("mlp", (36,), 2, hidden=[4])
    with pytest.raises(ll.LifelongError, match="stream 'flat'.*--no-augment") as err:
        ll.fit(stream, model, "naive", {"augment": True, "epochs": 1, "device": "cpu"})
    assert "\n" not in str(err.value)
    _, result = ll.fit(stream, model, "naive", {"epochs": 1, "device": "cpu"})  # default: off
    assert result.augment is False


def test_config_option_values_and_what_the_run_config_writes():
    assert ll.TrainConfig().augment is None
    with pytest.raises(ll.LifelongError, match="train option augment must be true or false"):
        ll.TrainConfig(augment="yes")
    assert ll.TrainConfig().augments(True) and not ll.TrainConfig(augment=False).augments(True)
    assert ll.TrainConfig(augment=True).augments(False)
    unset, off = ll.RunConfig(), ll.RunConfig(train=ll.TrainConfig(augment=False))
    assert "augment" not in unset.to_dict()["train"]  # ids of runs that do not say stay as before
    assert off.to_dict()["train"]["augment"] is False and off.run_id() != unset.run_id()
    assert ll.RunConfig.from_dict(off.to_dict()) == off and ll.RunConfig.from_dict(unset.to_dict()) == unset


@pytest.mark.parametrize("flags, expected", [([], None), (["--augment"], True), (["--no-augment"], False)])
def test_run_and_compare_flags(flags, expected):
    assert build_run_config(make_parser().parse_args(["run", *flags])).train.augment is expected
    comparison = build_comparison(make_parser().parse_args(["compare", "--strategies", "naive", *flags]))
    assert comparison.plan()[0].config.train.augment is expected


def test_toml_train_table_and_flag_override(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text("[train]\naugment = true\n")
    assert build_run_config(make_parser().parse_args(["run", str(config)])).train.augment is True
    args = make_parser().parse_args(["run", str(config), "--no-augment"])
    assert build_run_config(args).train.augment is False


def test_the_result_records_whether_the_batches_were_augmented(tmp_path, capsys):
    data = idx_folder(tmp_path / "data", tiny_arrays())
    common = ["run", "--bopt", f"source={data}", "--epochs", "1", "--device", "cpu", "--mopt", "hidden=[8]"]
    assert main([*common, "--augment", "--out", str(tmp_path / "on")]) == 0
    assert main([*common, "--out", str(tmp_path / "off")]) == 0
    (on,), (off,) = (tmp_path / "on").iterdir(), (tmp_path / "off").iterdir()
    on, off = (json.loads((d / "result.json").read_text()) for d in (on, off))
    assert on["augment"] is True and on["config"]["train"]["augment"] is True
    assert off["augment"] is False and "augment" not in off["config"]["train"]
    assert ll.load_result(tmp_path / "on" / on["run_id"]).augment is True
