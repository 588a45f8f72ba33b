"""Random crop with zero padding and horizontal flip: values on hand-made images, the draws, the
refusal of flat inputs."""

import pytest
import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.data.augment import PAD, check_images, crop_flip, draw, random_crop_flip

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
