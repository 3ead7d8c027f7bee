"""Every objective's label schedule: at prefix j the loss touches exactly the classifiers, levels and
dims its definition says, with the stated weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fractal_embeddings.errors import FractalError
from fractal_embeddings.heads import HeadConfig, build_head
from fractal_embeddings.objectives import get_objective, list_methods, schedule_weights
from fractal_embeddings.objectives.losses import infonce_margin, supervised_contrastive

N_CLASSES = (4, 12)
# the seed's recipe as DEVELOPERS.md states it: weight of (L0, L1) on prefix j
PAPER = {1: (1.0, 0.0), 2: (0.7, 0.3), 3: (0.3, 0.7), 4: (0.0, 1.0)}
EXPECTED = {
    "v5-paper": PAPER,
    "mrl": {j: (0.0, 1.0) for j in PAPER},
    "inverted": {1: (0.0, 1.0), 2: (0.3, 0.7), 3: (0.7, 0.3), 4: (1.0, 0.0)},
    "uhmt": {j: (0.5, 0.5) for j in PAPER},
    "no-prefix": {j: (0.0, 1.0) for j in PAPER},
}


def _batch(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)
    y1 = torch.randint(0, N_CLASSES[1], (n,), generator=g)
    y = torch.stack([y1 // 3, y1], dim=1)  # every fine class has one parent
    return x, y


def _fixed_plan(obj, j, n_steps=1, batch=24):
    plan = obj.plan(n_steps, batch, 4, 2, torch.Generator().manual_seed(0))
    plan["j"] = [j] * n_steps
    plan["block_mask"] = torch.ones_like(plan["block_mask"])  # no block dropout: exact arithmetic
    return plan


def _head(kind="linear"):
    torch.manual_seed(0)
    return build_head(HeadConfig(kind=kind), 32, N_CLASSES)


def _clusters():
    """Labels of four rows, and the rows clustered by label (tight) or not (mixed)."""
    y = torch.tensor([0, 0, 1, 1])
    tight = F.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]]), dim=1)
    mixed = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.99, 0.1], [0.1, 0.99]]), dim=1)
    return y, tight, mixed


@pytest.mark.parametrize("method", list(EXPECTED))
@pytest.mark.parametrize("j", [1, 2, 3, 4])
def test_prefix_family_loss_is_the_stated_formula(method, j):
    obj, head = get_objective(method), _head()
    x, y = _batch()
    loss = obj.loss(head, x, y, 0, _fixed_plan(obj, j))
    e = head(x)
    p = e.clone()
    p[:, j * 64 :] = 0
    w0, w1 = EXPECTED[method][j]
    want = F.cross_entropy(head.classifiers[1](e), y[:, 1])
    want = want + 0.6 * (
        w0 * F.cross_entropy(head.classifiers[0](p), y[:, 0]) + w1 * F.cross_entropy(head.classifiers[1](p), y[:, 1])
    )
    if method == "no-prefix":  # coarse regulariser on the full vector, beta = 0.6 * E_j[aligned L0 weight]
        want = want + 0.6 * (0.4 * 1 + 0.3 * 0.7 + 0.2 * 0.3) * F.cross_entropy(head.classifiers[0](e), y[:, 0])
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("method", list(EXPECTED))
@pytest.mark.parametrize("j", [1, 2, 3, 4])
def test_gradient_reaches_exactly_the_scheduled_classifier_dims(method, j):
    obj, head = get_objective(method), _head()
    x, y = _batch()
    obj.loss(head, x, y, 0, _fixed_plan(obj, j)).backward()
    g0 = head.classifiers[0].weight.grad
    coarse_weight = EXPECTED[method][j][0]
    if method == "no-prefix":  # the coarse classifier reads the whole vector, never a prefix
        assert g0.abs().sum() > 0 and g0[:, j * 64 :].abs().sum() > 0 or j == 4
    elif coarse_weight == 0:
        assert g0 is None or g0.abs().sum() == 0
    else:
        assert g0[:, : j * 64].abs().sum() > 0
        assert g0[:, j * 64 :].abs().sum() == 0  # zeroed dims carry no gradient
    # the finest classifier always reads the full vector (the CE(bot(e), y1) term)
    assert head.classifiers[1].weight.grad[:, 192:].abs().sum() > 0


def test_schedules_for_three_levels_are_documented_mapping():
    assert schedule_weights("aligned", 4, 3).tolist() == [[1, 0, 0], [0.3, 0.7, 0], [0, 0.7, 0.3], [0, 0, 1]]
    assert schedule_weights("finest", 4, 3)[:, -1].tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(schedule_weights("uniform", 4, 3), 1 / 3)
    assert schedule_weights("inverted", 4, 3)[0].tolist() == [0, 0, 1]
    for name in ("aligned", "inverted", "finest", "uniform"):
        np.testing.assert_allclose(schedule_weights(name, 6, 3).sum(axis=1), 1.0)


def test_plan_draws_prefixes_with_the_seed_probabilities_and_block_dropout():
    obj = get_objective("v5-paper")
    plan = obj.plan(40000, 16, 4, 2, torch.Generator().manual_seed(1))
    freq = np.bincount(plan["j"], minlength=5)[1:] / 40000
    np.testing.assert_allclose(freq, [0.4, 0.3, 0.2, 0.1], atol=0.01)
    keep = plan["block_mask"].mean(dim=(0, 1)).numpy()
    np.testing.assert_allclose(keep, [0.95, 0.9, 0.8, 0.7], atol=0.01)
    again = obj.plan(40000, 16, 4, 2, torch.Generator().manual_seed(1))
    assert again["j"] == plan["j"] and torch.equal(again["block_mask"], plan["block_mask"])


def test_block_dropout_zeroes_whole_blocks():
    obj, head = get_objective("v5-paper"), _head()
    x, y = _batch(n=16)
    plan = _fixed_plan(obj, 4, batch=16)
    plan["block_mask"][0, :, 1] = 0  # drop block 2 of every row
    obj.loss(head, x, y, 0, plan).backward()
    assert head.classifiers[1].weight.grad[:, 64:128].abs().sum() == 0
    assert head.classifiers[1].weight.grad[:, 128:].abs().sum() > 0


def test_heal_head_and_loss_touch_each_level_on_its_prefix():
    obj, head = get_objective("heal"), _head("heal")
    assert head.segments == [64, 192] and head.ends == [64, 256]
    x, y = _batch()
    e = head(x)
    np.testing.assert_allclose(e[:, :64].norm(dim=1).detach(), 1.0, rtol=1e-5)  # segments normalised
    loss = obj.loss(head, x, y, 0, {})
    want = 0.0
    for lv, end in enumerate(head.ends):
        z = F.normalize(e[:, :end], dim=1)
        want = want + supervised_contrastive(z, y[:, lv], 0.1) + F.cross_entropy(head.logits(lv, e), y[:, lv])
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert head.classifiers[0].weight.shape == (4, 64) and head.classifiers[1].weight.shape == (12, 256)


def test_supervised_contrastive_prefers_label_clusters():
    y, tight, mixed = _clusters()
    assert supervised_contrastive(tight, y) < supervised_contrastive(mixed, y)
    assert supervised_contrastive(tight, torch.tensor([0, 1, 2, 3])).item() == 0.0  # no positives


def test_bad_objective_input_is_one_line_errors():
    with pytest.raises(FractalError, match="unknown method 'v6'"):
        get_objective("v6")
    with pytest.raises(FractalError, match="has no option"):
        get_objective("mrl", temperature=0.5)
    with pytest.raises(FractalError, match="prefix_probs has 3 entries for 4 blocks"):
        get_objective("v5-paper", prefix_probs=(0.5, 0.3, 0.2)).check(4, 2)
    with pytest.raises(FractalError, match=">= one block per level"):
        get_objective("heal").check(2, 3)
    with pytest.raises(FractalError, match="not a multiple of block dim"):
        HeadConfig.from_dims(dim=250, block_dim=64)
    assert set(list_methods()) >= {"v5-paper", "mrl", "inverted", "no-prefix", "uhmt", "heal", "flat"}


def test_fractal_terms_and_stop_gradient():
    obj = get_objective("fractal")
    terms = obj.terms(4, 2)
    assert terms[0] == (4, 1, 1.0, 1)  # fine on the full vector, first block detached
    weights = {(j, lv): w for j, lv, w, _ in terms[1:]}
    assert weights[(1, 0)] == pytest.approx(0.6 * 0.4) and (1, 1) not in weights
    assert weights[(2, 0)] == pytest.approx(0.6 * 0.3 * 0.7) and weights[(2, 1)] == pytest.approx(0.6 * 0.3 * 0.3)
    assert all(f == (1 if lv == 1 else 0) for _, lv, _, f in terms)
    assert all(f == 0 for *_, f in get_objective("fractal-mrl").terms(4, 2))  # the control detaches nothing

    def first_block_grad(objective, y):
        head = build_head(HeadConfig(**objective.head_options()), 32, N_CLASSES)
        torch.manual_seed(0)
        for p in head.parameters():
            torch.nn.init.normal_(p, std=0.1)
        x = _batch()[0]
        objective.loss(head, x, y, 0, objective.plan(1, 24, 4, 2, torch.Generator())).backward()
        return head.proj.weight.grad[:64].clone()

    x, y = _batch()
    y_other = y.clone()
    y_other[:, 1] = (y[:, 1] + 3) % 12  # other fine labels, the same coarse labels
    for stop, same in ((True, True), (False, False)):
        o = get_objective("fractal", stop_grad=stop, head="linear")  # block 1 = the first 64 projection rows
        g1, g2 = first_block_grad(o, y), first_block_grad(o, y_other)
        assert torch.allclose(g1, g2) is same  # with stop-gradient the fine labels can't reach block 1


def test_mlp_and_block_norm_heads():
    head = build_head(HeadConfig(kind="mlp", block_norm=True, hidden_dim=48), 32, N_CLASSES)
    e = head(_batch()[0])
    assert e.shape == (24, 256) and isinstance(head.proj, torch.nn.Sequential)
    np.testing.assert_allclose(e.view(24, 4, 64).norm(dim=2).detach().numpy(), 1.0, rtol=1e-5)
    with pytest.raises(FractalError, match="linear or mlp"):
        get_objective("fractal", head="heal").check(4, 2)
    with pytest.raises(FractalError, match="contrastive_on"):
        get_objective("fractal", contrastive_on="middle").check(4, 2)
    with pytest.raises(FractalError, match="contrastive must be one of supcon, infonce-margin"):
        get_objective("fractal", contrastive="triplet").check(4, 2)


def test_infonce_margin_prefers_label_clusters_and_is_reproducible():
    y, tight, mixed = _clusters()
    assert infonce_margin(tight, y) < infonce_margin(mixed, y)
    assert infonce_margin(tight, torch.tensor([0, 1, 2, 3])).item() == 0.0  # no positives
    # orthogonal classes, identical rows within a class: the margin term is 0, InfoNCE alone remains
    ortho = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    t = 0.1
    nce = -torch.log(torch.exp(torch.tensor(1 / t)) / (torch.exp(torch.tensor(1 / t)) + 2))
    assert infonce_margin(ortho, y, t, margin=0.2).item() == pytest.approx(nce.item(), abs=1e-6)
    assert infonce_margin(ortho, y, t, margin=1.5).item() == pytest.approx(nce.item() + 0.5, abs=1e-6)
    z, labels = F.normalize(torch.randn(32, 8), dim=1), torch.randint(0, 4, (32,))
    a, b = (infonce_margin(z, labels, generator=torch.Generator().manual_seed(7)) for _ in range(2))
    assert a.item() == b.item()


def test_infonce_plan_draws_only_when_used():
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    assert "positive_seeds" not in get_objective("fractal").plan(10, 16, 4, 2, gen)
    assert torch.equal(gen.get_state(), state)  # supcon runs keep their random stream
    plan = get_objective("fractal", contrastive="infonce-margin").plan(10, 16, 4, 2, gen)
    assert plan["positive_seeds"].shape == (10,)
    head = _head()
    x, y = _batch()
    o = get_objective("fractal", contrastive="infonce-margin", head="linear")
    assert o.loss(head, x, y, 3, plan).item() == o.loss(head, x, y, 3, plan).item()


def test_refine_trains_only_the_newest_block():
    for method in ("fractal", "fractal-mrl"):
        terms = get_objective(method, refine=True).terms(4, 2)
        assert all(frozen == j - 1 for j, _, _, frozen in terms)
    o = get_objective("fractal-mrl", refine=True, head="linear", block_norm=False)
    head = _head()
    x, y = _batch()
    o.loss(head, x, y, 0, {"terms": [(3, 1, 1.0, 2)]}).backward()  # prefix 3 on the fine level
    g = head.proj.weight.grad.abs().sum(dim=1)
    assert g[:128].sum().item() == 0.0 and g[128:192].min().item() > 0 and g[192:].sum().item() == 0.0


def test_smec_trains_the_finest_level_on_shrinking_prefixes_in_turn():
    from fractal_embeddings.objectives.external import smec_stages

    assert smec_stages(4) == [4, 2, 1] and smec_stages(1) == [1]
    o = get_objective("smec")
    plan = o.plan(9, 16, 4, 2, torch.Generator())
    assert plan["stage"] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    head = _head()
    x, y = _batch()
    o.loss(head, x, y, 0, plan).backward()  # stage 0: the full vector only
    assert head.classifiers[0].weight.grad is None or head.classifiers[0].weight.grad.abs().sum() == 0
    head.zero_grad()
    o.loss(head, x, y, 8, plan).backward()  # stage 2: full, half and first block, finest level only
    g = head.classifiers[1].weight.grad
    assert g[:, :64].abs().sum() > 0 and g[:, 192:].abs().sum() > 0


def test_csr_head_is_a_topk_sparse_autoencoder():
    o = get_objective("csr", topk=8)
    head = build_head(HeadConfig(**o.head_options()), 32, N_CLASSES)
    x, y = _batch()
    h = head(x)
    assert h.shape == (24, 256) and bool(((h != 0).sum(dim=1) <= 8).all()) and bool((h >= 0).all())
    assert head.decode(h).shape == x.shape
    loss = o.loss(head, x, y, 0, o.plan(1, 24, 4, 2, torch.Generator()))
    loss.backward()
    assert head.enc.weight.grad.abs().sum() > 0 and head.dec.weight.grad.abs().sum() > 0
    with pytest.raises(FractalError, match="topk must be in"):
        build_head(HeadConfig(kind="topk", topk=0), 32, N_CLASSES)


def _loss_and_grads(obj, head, x, y, plan):
    head.zero_grad()
    loss = obj.loss(head, x, y, 0, plan)
    loss.backward()
    return loss.detach(), [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in head.parameters()]


@pytest.mark.parametrize(
    "method,options,n_classes",
    [
        ("fractal", {}, N_CLASSES),
        ("fractal-mrl", {}, N_CLASSES),
        ("fractal", {"refine": True}, N_CLASSES),
        ("fractal", {"stop_grad": False, "head": "linear"}, N_CLASSES),
        ("fractal", {"contrastive_on": "ends"}, N_CLASSES),
        ("fractal", {"contrastive_weight": 0.0}, N_CLASSES),
        ("fractal", {"prefix_probs": (0.1, 0.2, 0.3, 0.4), "temperature": 0.05}, N_CLASSES),
        ("fractal", {}, (2, 4, 12)),
        ("fractal", {}, (24, 24)),  # every row its own class: no anchor has a positive
        ("fractal", {"shape": (8, 16)}, N_CLASSES),
        ("fractal-mrl", {"shape": (2, 32)}, N_CLASSES),
        ("fractal", {"shape": (1, 64)}, N_CLASSES),  # the fine term's whole prefix detached: per-term path
    ],
)
def test_fused_fractal_loss_equals_the_per_term_path(method, options, n_classes):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 32, generator=g)
    if n_classes == (24, 24):
        y = torch.arange(24)[:, None].repeat(1, 2)
    else:
        fine = torch.randint(0, n_classes[-1], (24,), generator=g)
        y = torch.stack([fine * c // n_classes[-1] for c in n_classes], dim=1)  # nested levels
    options = dict(options)
    n_blocks, block_dim = options.pop("shape", (4, 64))
    fused = get_objective(method, **options)
    reference = get_objective(method, **options)
    reference.fused = False
    torch.manual_seed(0)
    head = build_head(HeadConfig(**fused.head_options(), n_blocks=n_blocks, block_dim=block_dim), 32, n_classes)
    plan = fused.plan(1, 24, n_blocks, len(n_classes), torch.Generator().manual_seed(0))
    loss_f, grads_f = _loss_and_grads(fused, head, x, y, plan)
    loss_r, grads_r = _loss_and_grads(reference, head, x, y, plan)
    if n_blocks > 1:  # the fused path ran: fewer, merged terms
        assert len(fused.loss_terms(head, x, y, 0, plan)) < len(plan["terms"])
    assert torch.allclose(loss_f, loss_r, rtol=1e-5, atol=1e-6)
    for gf, gr in zip(grads_f, grads_r, strict=True):
        assert torch.allclose(gf, gr, rtol=1e-4, atol=1e-6)
    parts = fused.loss_parts(head, x, y, 0, plan)
    assert torch.allclose(sum(parts.values()), loss_f, rtol=1e-6)


def test_supervised_contrastive_stack_equals_the_reference_per_matrix():
    from fractal_embeddings.objectives.losses import positive_pairs, supervised_contrastive_stack

    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(3, 20, 8, generator=g), dim=2)
    labels = torch.randint(0, 4, (20,), generator=g)
    stacked = supervised_contrastive_stack(z @ z.transpose(1, 2) / 0.1, positive_pairs(labels))
    for t in range(3):
        assert torch.allclose(stacked[t], supervised_contrastive(z[t], labels, 0.1), rtol=1e-5)
