"""The math of each training method's augmentation and head (debatch.augment, methods, models)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from debatch.cnn import methods
from debatch.cnn.augment import (
    DSU,
    MIN_GROUP,
    MixStyle,
    adversarial_deltas,
    alignment_loss,
    channel_moments,
    group_statistics,
    perturb_statistics,
)
from debatch.cnn.data import jitter_stats, plate_channel_stats
from debatch.cnn.models import ArcFaceHead, CellResNet, CosFaceHead
from debatch.settings import METHOD_BLOCKS, TRAIN_METHODS, preset_recipe


def styled_features(n=64, channels=6, size=8, seed=0) -> torch.Tensor:
    """Feature maps whose per-image channel mean/std vary a lot between images."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, channels, size, size, generator=g)
    scale = torch.rand(n, channels, 1, 1, generator=g) * 2 + 0.5
    shift = torch.randn(n, channels, 1, 1, generator=g) * 3
    return base * scale + shift


def moments(x):
    mean, std = channel_moments(x, 0.0)
    return mean.flatten(1), std.flatten(1)


@pytest.mark.parametrize("module", [DSU(p=1.0), MixStyle(p=1.0)])
def test_style_modules_are_identity_in_eval_and_when_inactive(module):
    x = styled_features()
    module.eval()
    assert torch.equal(module(x), x)
    module.train()
    inactive = type(module)(p=0.0).train()
    assert torch.equal(inactive(x), x)
    out = module(x)
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_dsu_resamples_statistics_with_the_across_batch_spread():
    """Output statistics = N(input statistic, across-batch std of that statistic) draws."""
    torch.manual_seed(0)
    x = styled_features(n=256)
    out = DSU(p=1.0).train()(x)
    in_mean, in_std = moments(x)
    out_mean, out_std = moments(out)
    z_mean = (out_mean - in_mean) / in_mean.std(0, unbiased=False)
    z_std = (out_std - in_std) / in_std.std(0, unbiased=False)  # |gamma|: rarely < 0 here
    for z in (z_mean, z_std):
        assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.1
    # The normalised content is untouched: each image's standardised map is the same (up to the
    # sign of a negative gamma; maps squeezed to a near-zero std lose float precision).
    standardise = lambda t: (t - channel_moments(t, 0)[0]) / channel_moments(t, 0)[1]  # noqa: E731
    kept = (out_std > 0.1).all(1)
    assert kept.float().mean() > 0.8
    np.testing.assert_allclose(standardise(out)[kept].abs(), standardise(x)[kept].abs(), atol=1e-3)


def test_dsu_without_spread_leaves_features_unchanged():
    """All images with identical statistics: the Gaussian scale is ~0, nothing to resample."""
    x = styled_features(n=1).expand(16, -1, -1, -1).clone()
    torch.manual_seed(0)
    np.testing.assert_allclose(DSU(p=1.0).train()(x), x, atol=1e-2)


def test_mixstyle_mixes_each_image_with_one_partner():
    """Each output mean/std is lam * own + (1 - lam) * partner's with one lam for all channels,
    lam ~ Beta(0.1, 0.1) (mostly near 0 or 1)."""
    torch.manual_seed(0)
    x = styled_features(n=32, channels=6)
    out = MixStyle(p=1.0, alpha=0.1).train()(x)
    in_mean, in_std = moments(x)
    out_mean, out_std = moments(out)
    lams = []
    for i in range(len(x)):
        found = None
        for j in range(len(x)):
            if j == i:
                continue
            lam = (out_mean[i] - in_mean[j]) / (in_mean[i] - in_mean[j])
            lam_value = float(lam.median())
            if torch.allclose(lam, torch.full_like(lam, lam_value), atol=1e-3) and torch.allclose(
                out_std[i], lam_value * in_std[i] + (1 - lam_value) * in_std[j], atol=1e-3
            ):
                found = lam_value
                break
        if found is None:  # lam == 1 (or partner == itself): the image keeps its own statistics
            assert torch.allclose(out_mean[i], in_mean[i], atol=1e-3)
            found = 1.0
        assert -1e-3 <= found <= 1 + 1e-3
        lams.append(found)
    lams = np.array(lams)
    assert np.mean((lams > 0.1) & (lams < 0.9)) < 0.4  # U-shaped Beta(0.1, 0.1)
    assert np.mean(lams < 0.99) > 0.2  # and statistics actually move


def test_group_statistics_pool_within_groups_and_fall_back_for_small_groups():
    x = styled_features(n=MIN_GROUP * 2 + 2)
    groups = torch.tensor([0] * MIN_GROUP + [1] * MIN_GROUP + [2] * 2)
    stats = group_statistics(x, groups, 4)
    img_mean, img_std = moments(x)
    for g in (0, 1):
        members = x[groups == g]
        torch.testing.assert_close(stats["mean"][g], members.mean((0, 2, 3)), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            stats["std"][g], members.std((0, 2, 3), unbiased=False), atol=1e-3, rtol=0
        )
        torch.testing.assert_close(
            stats["spread_mean"][g], img_mean[groups == g].std(0, unbiased=False), atol=1e-3, rtol=0
        )
        torch.testing.assert_close(
            stats["spread_std"][g], img_std[groups == g].std(0, unbiased=False), atol=1e-3, rtol=0
        )
    whole = img_mean.std(0, unbiased=False)
    torch.testing.assert_close(stats["spread_mean"][2], whole, atol=1e-3, rtol=0)


def test_perturbation_moves_each_groups_statistics_by_delta():
    x = styled_features(n=24)
    groups = torch.arange(24) % 3
    stats = group_statistics(x, groups, 3)
    zero = torch.zeros_like(stats["mean"])
    torch.testing.assert_close(
        perturb_statistics(x, groups, stats, zero, zero), x, atol=1e-4, rtol=0
    )
    delta_mean, delta_std = torch.randn_like(zero), torch.rand_like(zero) * 0.5
    out = perturb_statistics(x, groups, stats, delta_mean, delta_std)
    for g in range(3):
        members = out[groups == g]
        torch.testing.assert_close(
            members.mean((0, 2, 3)), stats["mean"][g] + delta_mean[g], atol=1e-3, rtol=0
        )
        torch.testing.assert_close(
            members.std((0, 2, 3), unbiased=False),
            stats["std"][g] + delta_std[g],
            atol=1e-3,
            rtol=1e-3,
        )


def tiny_net(**arch) -> CellResNet:
    torch.manual_seed(0)
    return CellResNet(
        in_channels=3, n_classes=4, width=8, depth=1, stages=2, embedding_dim=16, **arch
    )


def test_gradient_ascent_increases_the_task_loss_within_the_bound():
    """K ascent steps from the random start must raise the loss, and never leave the box."""
    model = tiny_net().eval()
    x, target = torch.randn(48, 3, 16, 16), torch.randint(0, 4, (48,))
    groups = torch.arange(48) % 3
    h = model.features_upto(x, 1).detach()
    stats = group_statistics(h, groups, 3)

    def loss_fn(perturbed):
        return F.cross_entropy(model.head(model.features_from(perturbed, 1)), target)

    def loss_after(steps):
        torch.manual_seed(1)
        deltas = adversarial_deltas(h, groups, stats, loss_fn, steps, bound=2.0, step_size=0.5)
        with torch.no_grad():
            return float(loss_fn(perturb_statistics(h, groups, stats, *deltas))), deltas

    start, _ = loss_after(0)
    with torch.no_grad():
        clean = float(loss_fn(h))
    one, _ = loss_after(1)
    three, (delta_mean, delta_std) = loss_after(3)
    assert three > one > start and three > clean
    assert (delta_mean.abs() <= 2.0 * stats["spread_mean"] + 1e-6).all()
    assert (delta_std.abs() <= 2.0 * stats["spread_std"] + 1e-6).all()


def test_frozen_batchnorm_stats_leave_running_statistics_alone():
    model = tiny_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    with methods.frozen_batchnorm_stats(model):
        model(torch.randn(8, 3, 16, 16) * 5 + 3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    model(torch.randn(8, 3, 16, 16) * 5 + 3)  # momentum restored: now they move
    assert not torch.equal(before["stem.1.running_mean"], model.state_dict()["stem.1.running_mean"])


@pytest.mark.parametrize("group_by_groups", [4, 1])
def test_abra_step_trains_on_clean_and_perturbed_images(group_by_groups):
    """Loss = CE(clean) + CE(perturbed) + alignment; gradients reach every layer; works with
    plate groups and without any grouping (no batch labels)."""
    settings = METHOD_BLOCKS["abra"].merge({"level": 1, "steps": 2})
    model = CellResNet(
        **methods.model_arch(
            preset_recipe("abra", settings),
            in_channels=3,
            n_classes=4,
            width=8,
            depth=1,
            stages=2,
            embedding_dim=16,
        )
    )
    model.train()
    torch.manual_seed(0)
    x, target = torch.randn(32, 3, 16, 16), torch.randint(0, 4, (32,))
    groups = torch.arange(32) % group_by_groups
    loss, logits, parts = methods.ABRA(settings, group_by_groups)(model, x, target, groups)
    assert logits.shape == (32, 4) and set(parts) == {"loss_ce", "loss_adv", "loss_align"}
    expected = parts["loss_ce"] + parts["loss_adv"] + parts["loss_align"]
    torch.testing.assert_close(loss, expected)
    values = [float(v.detach()) for v in parts.values()]
    assert all(math.isfinite(v) for v in values) and float(parts["loss_align"].detach()) > 0
    loss.backward()
    assert model.stem[0].weight.grad.abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0


def trained_abra_net(settings: dict) -> tuple[CellResNet, torch.Tensor, torch.Tensor]:
    """A tiny ABRA network after a few plain steps on learnable data (so the loss is not flat)."""
    torch.manual_seed(0)
    model = CellResNet(
        **methods.model_arch(
            preset_recipe("abra", settings),
            in_channels=3,
            n_classes=4,
            width=8,
            depth=1,
            stages=2,
            embedding_dim=16,
        )
    ).train()
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 4, (64,), generator=g)
    x = torch.randn(64, 3, 16, 16, generator=g) + 0.3 * target[:, None, None, None]
    optimizer = torch.optim.AdamW(model.parameters(), 1e-2)
    for _ in range(10):
        loss = F.cross_entropy(model(x, target), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, x, target


@pytest.mark.parametrize("n_groups", [1, 4])
def test_abra_inner_ascent_raises_the_loss_the_outer_step_trains_on(n_groups):
    """In training mode (batch-statistics BN, margin head), K ascent steps from the same random
    start (same seed: same perturbed rows) must raise the perturbed rows' outer cross-entropy,
    with plate groups and with a single group (no batch labels)."""
    settings = METHOD_BLOCKS["abra"].merge({"level": 1})
    model, x, target = trained_abra_net(settings)
    groups = torch.arange(len(x)) % n_groups
    loss_adv = {}
    for steps in (0, 2):
        torch.manual_seed(3)
        step = methods.ABRA({**settings, "steps": steps}, n_groups)
        loss_adv[steps] = float(step(model, x, target, groups)[2]["loss_adv"].detach())
    assert loss_adv[2] > 1.5 * loss_adv[0]


def test_abra_inner_steps_see_the_whole_mini_batch():
    """Train-mode BN normalises with the batch's statistics: the ascent must run the same rows
    (clean + perturbed) as the outer step, or BN cancels a shift shared by the perturbed rows."""
    settings = METHOD_BLOCKS["abra"].merge({"level": 1, "steps": 2})
    model, x, target = trained_abra_net(settings)
    rows = []
    model.stages[1].register_forward_pre_hook(lambda module, args: rows.append(len(args[0])))
    methods.ABRA(settings, 1)(model, x, target, torch.zeros(len(x), dtype=torch.long))
    assert rows == [len(x)] * 3  # two ascent steps, then the outer step


def test_alignment_loss_is_zero_only_for_matching_distributions():
    a = torch.randn(64, 8)
    assert float(alignment_loss(a, a)) < 1e-10
    assert float(alignment_loss(a, a[torch.randperm(64)])) < 1e-6  # a set, not pairs
    assert float(alignment_loss(a, a + torch.tensor([3.0] + [0.0] * 7))) > 0.01


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_every_method_is_identity_at_eval_time(method):
    """In eval mode a method's network equals the same weights with no augmentation modules."""
    settings = METHOD_BLOCKS[method].merge({})
    arch = methods.model_arch(
        preset_recipe(method, settings),
        in_channels=3,
        n_classes=4,
        width=8,
        depth=1,
        stages=3,
        embedding_dim=16,
    )
    torch.manual_seed(0)
    model = CellResNet(**arch)
    plain = CellResNet(**{k: v for k, v in arch.items() if k != "feature_augment"})
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    x = torch.randn(8, 3, 16, 16)
    torch.testing.assert_close(model.forward_features(x), plain.forward_features(x))
    torch.testing.assert_close(model(x, torch.zeros(8, dtype=torch.long)), plain(x))


def test_margin_heads_apply_their_margin_only_in_training_with_labels():
    torch.manual_seed(0)
    embedding, labels = torch.randn(16, 8), torch.randint(0, 5, (16,))
    for head_type in (CosFaceHead, ArcFaceHead):
        head = head_type(8, 5, s=30.0, m=0.3)
        cosine = F.linear(F.normalize(embedding), F.normalize(head.weight))
        head.eval()
        torch.testing.assert_close(head(embedding, labels), 30 * cosine)
        head.train()
        torch.testing.assert_close(head(embedding), 30 * cosine)
        logits = head(embedding, labels)
        target = F.one_hot(labels, 5).bool()
        torch.testing.assert_close(logits[~target], 30 * cosine[~target])
        theta = torch.acos(cosine[target])
        expected = (
            cosine[target] - 0.3
            if head_type is CosFaceHead
            else torch.where(
                theta + 0.3 < math.pi, torch.cos(theta + 0.3), cosine[target] - 0.3 * math.sin(0.3)
            )
        )
        torch.testing.assert_close(logits[target], 30 * expected, atol=1e-4, rtol=0)


def test_deepnoise_jitter_and_plate_statistics():
    """Jitter factors stay within +-jitter and differ per crop/channel; plate stats are the
    channel mean/std of the plate's crops."""
    mean, std = torch.rand(200, 5, 1, 1) + 1, torch.rand(200, 5, 1, 1) + 1
    jm, js = jitter_stats(mean, std, 0.1, np.random.default_rng(0))
    for new, old in ((jm, mean), (js, std)):
        ratio = new / old
        assert float(ratio.min()) >= 0.9 and float(ratio.max()) <= 1.1
        assert float(ratio.std()) > 0.04  # ~ uniform on [0.9, 1.1]
    crops = np.random.default_rng(0).random((30, 5, 6, 6)).astype(np.float16)
    plate_mean, plate_std = plate_channel_stats(crops)
    np.testing.assert_allclose(plate_mean, crops.astype(np.float64).mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(plate_std, crops.astype(np.float64).std(axis=(0, 2, 3)))


@pytest.mark.parametrize(
    "block, match",
    [
        ({"stepz": 1}, "unknown train.abra parameter"),
        ({"group_by": "well"}, "group_by"),
        ({"adv_fraction": 1.5}, "adv_fraction"),
        ({"head": "softmax"}, "head"),
    ],
)
def test_bad_abra_settings_are_named(block, match):
    with pytest.raises(ValueError, match=match):
        METHOD_BLOCKS["abra"].merge(block)
