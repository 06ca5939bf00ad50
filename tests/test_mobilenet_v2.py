import pytest
import torch

from training.models.mobilenet_v2 import MobileNetV2, make_divisible

torch.set_num_threads(1)


def test_full_width_rgb_matches_torchvision_parameter_count():
    # torchvision.models.mobilenet_v2() reports 3,504,872 parameters (its docs' num_params).
    m = MobileNetV2(num_classes=1000, width_mult=1.0, in_channels=3)
    assert sum(p.numel() for p in m.parameters()) == 3_504_872


def test_torchvision_key_layout():
    keys = MobileNetV2(num_classes=10, width_mult=0.5).state_dict().keys()
    for key in [
        "features.0.0.weight", "features.0.1.running_var", "features.1.conv.0.0.weight",  # t=1 block: dw first
        "features.1.conv.1.weight", "features.1.conv.2.bias", "features.2.conv.0.0.weight",  # t=6: expand first
        "features.2.conv.1.0.weight", "features.2.conv.2.weight", "features.2.conv.3.running_mean",
        "features.17.conv.3.weight", "features.18.0.weight", "features.18.1.bias", "classifier.1.weight",
    ]:
        assert key in keys, key
    assert not any(k.startswith("features.19") for k in keys)


@pytest.mark.parametrize("width", [0.35, 0.5, 1.0, 1.4])
def test_channel_rule(width):
    m = MobileNetV2(num_classes=None, width_mult=width, in_channels=1)
    assert m.features[0][0].in_channels == 1
    assert m.features[0][0].out_channels == make_divisible(32 * width, 8)
    assert m.last_channel == make_divisible(1280 * max(1.0, width), 8)
    assert m.features[17].out_channels == make_divisible(320 * width, 8)


def test_depth_scaling_keeps_the_first_stages_and_sets_the_embedding_width():
    full = MobileNetV2(num_classes=None, width_mult=1.0)
    short = MobileNetV2(num_classes=None, width_mult=1.0, stages=4, last_channel=256)
    # stem + 1 + 2 + 3 + 4 blocks of the paper's first four stages + the 1x1 conv
    assert len(short.features) == 1 + 10 + 1
    for a, b in zip(list(full.features)[:11], list(short.features)[:11]):  # same layers as the full network's
        assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert short.features[-1][0].in_channels == 64 and short.last_channel == 256
    assert short.embed(torch.randn(2, 1, 64, 64)).shape == (2, 256)
    with pytest.raises(ValueError, match="stages"):
        MobileNetV2(stages=0)


def test_make_divisible_never_drops_more_than_ten_percent():
    for v in range(1, 2000):
        r = make_divisible(v * 0.37, 8)
        assert r % 8 == 0 and r >= 0.9 * v * 0.37


def test_embed_is_pooled_features_and_forward_uses_classifier():
    m = MobileNetV2(num_classes=7, width_mult=0.5).eval()
    x = torch.randn(3, 1, 32, 32)
    emb = m.embed(x)
    assert emb.shape == (3, m.last_channel)
    torch.testing.assert_close(emb, m.features(x).mean(dim=(2, 3)))
    torch.testing.assert_close(m(x), m.classifier(emb))


def test_encoder_only_has_no_classifier_parameters():
    m = MobileNetV2(num_classes=None).eval()
    assert not any(k.startswith("classifier") for k in m.state_dict())
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(m(x), m.embed(x))


def test_init_like_torchvision():
    m = MobileNetV2(num_classes=10)
    bn = m.features[0][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    lin = m.classifier[1]
    assert torch.all(lin.bias == 0) and 0.005 < float(lin.weight.detach().std()) < 0.015
    conv = m.features[18][0]  # kaiming fan_out: std = sqrt(2 / (out * k * k))
    expected = (2 / conv.out_channels) ** 0.5
    assert abs(float(conv.weight.detach().std()) / expected - 1) < 0.1


def test_residual_only_where_shapes_match():
    m = MobileNetV2(num_classes=None, width_mult=0.5)
    for block in m.features[1:18]:
        conv = block.conv
        first = conv[0][0]
        assert block.use_res_connect == (block.stride == 1 and first.in_channels == block.out_channels)


def test_channels_last_gives_same_output():
    m = MobileNetV2(num_classes=None, width_mult=0.5).eval()
    x = torch.randn(2, 1, 32, 32)
    ref = m(x)
    m = m.to(memory_format=torch.channels_last)
    torch.testing.assert_close(m(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5, rtol=1e-4)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="width_mult"):
        MobileNetV2(width_mult=0)
    with pytest.raises(ValueError, match=r"\[M, C, H, W\]"):
        MobileNetV2(num_classes=None).embed(torch.randn(1, 1, 1, 32, 32))
