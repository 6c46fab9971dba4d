import pytest
import torch
import torch.nn.functional as F

from uwav.config import GeneratorConfig, ParserConfig
from uwav.errors import UwavError
from uwav.models import HAN, Generator, padding_attention_mask

A_DIM, V_DIM, CLASSES = 6, 10, 5
SMALL_GEN = GeneratorConfig(hidden=16, layers=2, heads=4, ff=32, dropout=0.3)
SMALL_HAN = ParserConfig(d_model=16, layers=2, heads=4, ff=32, dropout=0.1)


def small_gen() -> Generator:
    return Generator(SMALL_GEN, audio_dim=A_DIM, visual_dim=V_DIM)


def small_han(layer_impl: str = "fast", **section) -> HAN:
    config = ParserConfig(**{**vars(SMALL_HAN), **section})
    return HAN(config, audio_dim=A_DIM, visual_dim=V_DIM, num_classes=CLASSES, layer_impl=layer_impl)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def gen_inputs(b: int = 2, t: int = 7, c: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, t, A_DIM, generator=g),
        torch.randn(b, t, V_DIM, generator=g),
        torch.randn(c, A_DIM, generator=g),
        torch.randn(c, V_DIM, generator=g),
    )


def test_generator_param_count_matches_method():
    assert n_params(Generator()) == 92_985_856


def test_han_param_count_paper_config():
    # method §9.1: 23,023,691 including 2,048 parameters of two unused final norms we do not create.
    assert n_params(HAN(ParserConfig())) == 23_023_691 - 2_048
    assert n_params(HAN(ParserConfig(), layer_impl="fast")) == 23_023_691 - 2_048


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_clip_clap_han_has_the_official_parameter_shapes():
    """issue 17 item 5 (Table A6 †). The official HybridAttentionNet run on CLAP (512) + CLIP (768) with
    hidden 768, 16 heads, FF 2048, 5 layers, 1 MMIL layer, 25 classes. Its parameters, hand-listed under the
    uwav names (official name in the comment); the official model also creates fc_fusion (1280 → 768) and
    final_norm_a/v, which that variant never uses, so uwav does not create them."""
    d, heads, ff, c = 768, 16, 2048, 25
    official = {
        "audio_proj.0.weight": (2 * d, 512), "audio_proj.0.bias": (2 * d,),  # fc_a.layers.0
        "audio_proj.2.weight": (d, 2 * d), "audio_proj.2.bias": (d,),  # fc_a.layers.1
        "fc_prob.weight": (c, d), "fc_prob.bias": (c,),
        "fc_frame_att.weight": (c, d), "fc_frame_att.bias": (c,),  # fc_frame_att.layers.0
        "fc_av_att.weight": (c, d), "fc_av_att.bias": (c,),  # fc_av_att.layers.0
    }
    for i in range(5):  # hat_encoder.layers.i
        for attn in ("cross_attn", "self_attn"):  # cm_attn, self_attn
            official |= {f"layers.{i}.{attn}.in_proj_weight": (3 * d, d), f"layers.{i}.{attn}.in_proj_bias": (3 * d,),
                         f"layers.{i}.{attn}.out_proj.weight": (d, d), f"layers.{i}.{attn}.out_proj.bias": (d,)}
        official |= {f"layers.{i}.linear1.weight": (ff, d), f"layers.{i}.linear1.bias": (ff,),
                     f"layers.{i}.linear2.weight": (d, ff), f"layers.{i}.linear2.bias": (d,)}
        for norm in ("norm1", "norm2"):
            official |= {f"layers.{i}.{norm}.weight": (d,), f"layers.{i}.{norm}.bias": (d,)}
    config = ParserConfig(d_model=d, layers=5, heads=heads, ff=ff, visual_projection="none")
    for impl in ("plain", "fast"):
        han = HAN(config, audio_dim=512, visual_dim=768, num_classes=c, layer_impl=impl)
        assert shapes(han) == official, impl
    # The CLIP features enter the layers as they are.
    han = HAN(config, audio_dim=512, visual_dim=768, num_classes=c).eval()
    clip = torch.randn(2, 10, 768)
    assert han.visual_proj(clip) is clip
    with pytest.raises(UwavError, match="d_model"):
        HAN(ParserConfig(d_model=512, heads=16, visual_projection="none"), audio_dim=512, visual_dim=768)


def test_hidden_widths_are_twice_the_model_width():
    """issue 17 item 7: the HAN audio MLP is Da → 2d → d and the generator input MLP D → 2h → h, as the
    code; at the official sizes that is the former fixed 1024 and 2048."""
    han = HAN(ParserConfig(d_model=96, heads=4), audio_dim=A_DIM, visual_dim=V_DIM, num_classes=CLASSES)
    assert shapes(han)["audio_proj.0.weight"] == (192, A_DIM) and shapes(han)["audio_proj.2.weight"] == (96, 192)
    gen = Generator(GeneratorConfig(hidden=48, layers=1, heads=4, ff=32), audio_dim=A_DIM, visual_dim=V_DIM)
    for stream, dim in ((gen.audio, A_DIM), (gen.visual, V_DIM)):
        assert shapes(stream)["input_proj.0.weight"] == (96, dim) and shapes(stream)["input_proj.2.weight"] == (48, 96)
    # Official sizes: unchanged shapes (and the parameter counts pinned above).
    assert shapes(HAN(ParserConfig()))["audio_proj.0.weight"] == (1024, 128)
    assert shapes(HAN(ParserConfig()))["audio_proj.2.weight"] == (512, 1024)
    paper = Generator()
    assert shapes(paper.audio)["input_proj.0.weight"] == (2048, 512)
    assert shapes(paper.visual)["input_proj.0.weight"] == (2048, 768)
    assert shapes(paper.visual)["input_proj.2.weight"] == (1024, 2048)


def test_han_linear_audio_projection_is_single_linear():
    mlp, lin = HAN(ParserConfig(audio_projection="mlp")), HAN(ParserConfig(audio_projection="linear"))
    assert n_params(mlp) - n_params(lin) == (128 * 1024 + 1024 + 1024 * 512 + 512) - (128 * 512 + 512)
    with pytest.raises(UwavError):
        HAN(ParserConfig(audio_projection="conv"))
    with pytest.raises(UwavError, match="layer_impl"):
        HAN(ParserConfig(), layer_impl="auto")  # resolved by the caller, who knows the device


def test_padding_mask_blocks_query_or_key_padding():
    valid = torch.tensor([[True, True, False], [True, True, True]])
    mask = padding_attention_mask(valid, heads=2)
    assert mask.shape == (4, 3, 3)
    assert torch.all(mask[2:] == 0)  # second video: no padding
    expected = torch.tensor([[0, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=torch.bool)
    for row in (0, 1):  # both heads of the first video
        assert torch.equal(mask[row] < 0, expected)
    assert mask.min() == -1e10
    half = padding_attention_mask(valid, heads=2, dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.isfinite(half).all() and torch.equal(half < 0, mask < 0)


def test_generator_shapes_and_label_space_swap():
    torch.manual_seed(0)
    gen = small_gen().eval()
    clap, clip, ta, tv = gen_inputs(c=5)
    z_a, z_v = gen(clap, clip, ta, tv)
    assert z_a.shape == z_v.shape == (2, 7, 5)
    # Same network, another label space: only the text embeddings change.
    z_a100, _ = gen(clap, clip, torch.randn(100, 6), torch.randn(100, 10))
    assert z_a100.shape == (2, 7, 100)


def test_generator_logits_are_scaled_inner_product_with_text_as_stored_or_normalised():
    """issue 17 item 6: the code uses all_event_feats.npy rows as stored; normalize_text L2-normalises them."""
    torch.manual_seed(0)
    gen = small_gen().eval()
    clap, clip, ta, tv = gen_inputs()
    with torch.no_grad():
        z_a, z_v = gen(clap, clip, ta, tv)
        h_a = gen.audio.features(clap)
        h_v = gen.visual.features(clip)
        z_a_scaled, _ = gen(clap, clip, ta * 7.0, tv)
    torch.testing.assert_close(z_a, 3.2912 * h_a @ ta.T)
    torch.testing.assert_close(z_v, 4.6052 * h_v @ tv.T)
    torch.testing.assert_close(z_a_scaled, 7.0 * z_a)  # rows as stored: their norm scales the logits
    assert h_a.shape == (2, 7, 6) and h_v.shape == (2, 7, 10)

    normalised = Generator(GeneratorConfig(**{**vars(SMALL_GEN), "normalize_text": True}), A_DIM, V_DIM).eval()
    normalised.load_state_dict(gen.state_dict())
    with torch.no_grad():
        n_a, n_v = normalised(clap, clip, ta, tv)
        n_a_scaled, _ = normalised(clap, clip, ta * 7.0, tv)
    torch.testing.assert_close(n_a, 3.2912 * h_a @ (ta / ta.norm(dim=-1, keepdim=True)).T)
    torch.testing.assert_close(n_v, 4.6052 * h_v @ (tv / tv.norm(dim=-1, keepdim=True)).T)
    torch.testing.assert_close(n_a_scaled, n_a)


def test_generator_checkpoint_without_normalize_text_loads_as_trained(tmp_path):
    """Checkpoints from before `generator.normalize_text` were trained on normalised rows; new ones say."""
    from uwav.checkpoints import load_generator, save_generator

    path = tmp_path / "gen.pt"
    save_generator(path, small_gen(), epoch=1, segment_audio_visual=0.0)
    assert load_generator(path).config.normalize_text is False
    ckpt = torch.load(path, weights_only=True)
    del ckpt["generator"]["normalize_text"]
    torch.save(ckpt, path)
    assert load_generator(path).config.normalize_text is True


@pytest.mark.parametrize("grad", [False, True])
def test_generator_padding_does_not_change_valid_outputs(grad):
    torch.manual_seed(0)
    gen = small_gen().eval()
    clap, clip, ta, tv = gen_inputs(b=1, t=7)
    g = torch.Generator().manual_seed(1)
    # A second video of full length 12 in the same batch; the first is padded from 7 to 12 with junk.
    clap_pad = torch.randn(2, 12, 6, generator=g) * 100
    clip_pad = torch.randn(2, 12, 10, generator=g) * 100
    clap_pad[0, :7], clip_pad[0, :7] = clap[0], clip[0]
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[0, 7:] = False
    with torch.set_grad_enabled(grad):
        ref_a, ref_v = gen(clap, clip, ta, tv)
        pad_a, pad_v = gen(clap_pad, clip_pad, ta, tv, valid=valid)
        full_a, _ = gen(clap_pad[1:], clip_pad[1:], ta, tv)
    torch.testing.assert_close(pad_a[0, :7], ref_a[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pad_v[0, :7], ref_v[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pad_a[1], full_a[0], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(pad_a).all() and torch.isfinite(pad_v).all()


def test_generator_padding_gradients_are_finite():
    torch.manual_seed(0)
    gen = small_gen().train()
    clap, clip, ta, tv = gen_inputs(b=2, t=6)
    valid = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    z_a, z_v = gen(clap, clip, ta, tv, valid=valid)
    (z_a[valid].sum() + z_v[valid].sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in gen.parameters() if p.grad is not None)


def test_generator_is_deterministic_under_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        gen = small_gen().train()  # dropout active, drawn from the seeded global RNG
        clap, clip, ta, tv = gen_inputs()
        outs.append(gen(clap, clip, ta, tv)[0])
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def han_inputs(b: int = 3, t: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, A_DIM, generator=g), torch.randn(b, t, V_DIM, generator=g)


def test_han_shapes_and_video_prob_range():
    torch.manual_seed(0)
    han = small_han().eval()
    audio, visual = han_inputs()
    out = han(audio, visual)
    assert out.video_prob.shape == (3, 5)
    assert out.seg_logits_a.shape == out.seg_logits_v.shape == (3, 10, 5)
    assert out.feats_a.shape == out.feats_v.shape == (3, 10, 16)
    assert torch.all(out.video_prob > 0) and torch.all(out.video_prob < 2)
    torch.testing.assert_close(han.classify(out.feats_a), out.seg_logits_a)


def test_han_mmil_pooling_matches_formula():
    torch.manual_seed(0)
    han = small_han().eval()
    audio, visual = han_inputs(b=2)
    with torch.no_grad():
        out = han(audio, visual)
        feats = {"a": out.feats_a, "v": out.feats_v}
        expected = torch.zeros(2, 5)
        for b in range(2):
            for c in range(5):
                frame = {m: torch.softmax(han.fc_frame_att(f[b])[:, c], dim=0) for m, f in feats.items()}
                mod = torch.softmax(
                    torch.stack([han.fc_av_att(feats["a"][b])[:, c], han.fc_av_att(feats["v"][b])[:, c]]),
                    dim=0,
                )
                for i, m in enumerate("av"):
                    prob = torch.sigmoid(han.fc_prob(feats[m][b])[:, c])
                    expected[b, c] += (mod[i] * frame[m] * prob).sum()
    torch.testing.assert_close(out.video_prob, expected)


def test_han_sequential_update_with_shared_layers():
    torch.manual_seed(0)
    han = small_han().eval()
    audio, visual = han_inputs(b=2)
    with torch.no_grad():
        out = han(audio, visual)
        a, v = han.audio_proj(audio), han.visual_proj(visual)
        for layer in han.layers:
            a = layer(a, v)
            v = layer(v, a)  # visual reads the updated audio, same layer weights
    # forward_pair batches the two streams' self-attention: same function, summation order may differ.
    torch.testing.assert_close(out.feats_a, a)
    torch.testing.assert_close(out.feats_v, v)


def test_han_layer_formula_against_torch_multihead_attention():
    torch.manual_seed(0)
    layer = small_han().eval().layers[0]
    # The reference attention: torch's own module, loaded with the layer's weights (same names).
    ref = {}
    for name in ("cross_attn", "self_attn"):
        ref[name] = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
        ref[name].load_state_dict(getattr(layer, name).state_dict())
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 4, 16, generator=g), torch.randn(2, 4, 16, generator=g)
    with torch.no_grad():
        cross = ref["cross_attn"](q, k, k, need_weights=False)[0]
        own = ref["self_attn"](q, q, q, need_weights=False)[0]
        z = F.layer_norm(q + cross + own, (16,), layer.norm1.weight, layer.norm1.bias)
        ffn = layer.linear2(torch.relu(layer.linear1(z)))
        expected = F.layer_norm(z + ffn, (16,), layer.norm2.weight, layer.norm2.bias)
        torch.testing.assert_close(layer(q, k), expected)


def test_attention_matches_torch_module_and_initialisation():
    from uwav.models.attention import Attention

    torch.manual_seed(5)
    ref = torch.nn.MultiheadAttention(32, 4, dropout=0.1, batch_first=True)
    torch.manual_seed(5)
    att = Attention(32, 4, dropout=0.1)
    # Same names, order and seeded initial values: checkpoints and seeded runs carry over.
    assert [n for n, _ in att.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for (_, p), (_, r) in zip(att.named_parameters(), ref.named_parameters(), strict=True):
        assert torch.equal(p, r)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 10, 32, generator=g), torch.randn(3, 7, 32, generator=g)
    att.eval(), ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(att(q), ref(q, q, q, need_weights=False)[0])
        torch.testing.assert_close(att(q, k), ref(q, k, k, need_weights=False)[0])


def test_attention_training_path_value_and_gradients():
    """The explicit bmm path (training with dropout) against a direct formula with the same mask."""
    from uwav.models.attention import Attention

    torch.manual_seed(0)
    att = Attention(32, 4, dropout=0.2).train()
    g = torch.Generator().manual_seed(1)
    q = torch.randn(3, 10, 32, generator=g, requires_grad=True)
    k = torch.randn(3, 6, 32, generator=g, requires_grad=True)
    torch.manual_seed(9)
    out = att(q, k)
    torch.manual_seed(9)  # the attention-weight dropout is the only draw: replay it as a mask
    mask = att.drop(torch.ones(3 * 4, 10, 6))
    assert (mask == 0).any() and (mask > 1).any()

    w = att.in_proj_weight
    bias = att.in_proj_bias
    qp, kp, vp = F.linear(q, w[:32], bias[:32]), F.linear(k, w[32:64], bias[32:64]), F.linear(k, w[64:], bias[64:])

    def heads(x):
        return x.view(3, -1, 4, 8).transpose(1, 2).reshape(12, -1, 8)

    weights = torch.softmax(heads(qp) @ heads(kp).transpose(1, 2) / 8 ** 0.5, dim=-1) * mask
    expected = att.out_proj((weights @ heads(vp)).view(3, 4, 10, 8).transpose(1, 2).reshape(3, 10, 32))
    torch.testing.assert_close(out, expected)
    upstream = torch.randn(out.shape, generator=g)
    grads = torch.autograd.grad(out, (q, k, w, att.out_proj.weight), upstream)
    grads_ref = torch.autograd.grad(expected, (q, k, w, att.out_proj.weight), upstream)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want)


def test_short_row_softmax_gradcheck():
    from uwav.models.attention import ShortRowSoftmax

    x = torch.randn(4, 3, 10, dtype=torch.float64, requires_grad=True) * 30  # large scores: max shift needed
    torch.testing.assert_close(ShortRowSoftmax.apply(x), torch.softmax(x, dim=-1))
    assert torch.autograd.gradcheck(ShortRowSoftmax.apply, (x.detach().requires_grad_(),))


def test_han_training_gradients_match_unbatched_streams():
    """forward_pair (both streams' self-attention in one batch) trains exactly like L(a, v) then L(v, a')."""
    torch.manual_seed(0)
    han = small_han(dropout=0.0).train()
    audio, visual = han_inputs(b=3)

    def loss_of(out):
        return out.video_prob.sum() + out.seg_logits_a.square().mean() + out.seg_logits_v.abs().mean()

    got = torch.autograd.grad(loss_of(han(audio, visual)), list(han.parameters()))
    pair = [layer.forward_pair for layer in han.layers]
    for layer in han.layers:
        layer.forward_pair = lambda a, v, layer=layer: (lambda a2: (a2, layer(v, a2)))(layer(a, v))
    want = torch.autograd.grad(loss_of(han(audio, visual)), list(han.parameters()))
    for layer, fp in zip(han.layers, pair, strict=True):
        layer.forward_pair = fp
    for (name, _), g1, g2 in zip(han.named_parameters(), got, want, strict=True):
        torch.testing.assert_close(g1, g2, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("dropout", [0.1, 0.0])
def test_han_backward_never_rebuilds_a_tensor_modified_through_a_view(dropout):
    """An in-place op on a view (e.g. ReLU on a Linear's 3-D output) puts a CopySlices node in the graph,
    whose backward clones and copies the whole base tensor: it must not appear in HAN's training graph."""
    torch.manual_seed(0)
    han = small_han(dropout=dropout).train()
    out = han(*han_inputs(b=3))
    loss = out.video_prob.sum() + out.seg_logits_a.sum() + out.seg_logits_v.sum()
    seen, stack, names = set(), [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(fn for fn, _ in node.next_functions)
    assert "CopySlices" not in names and "AddmmBackward0" in names


@pytest.mark.parametrize("impl", ["plain", "fast"])
def test_han_is_deterministic_under_seed(impl):
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        han = small_han(impl).train()
        outs.append(han(*han_inputs()).video_prob)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_plain_and_fast_han_share_parameters_and_seeded_initialisation():
    """The CPU-tuned layer is the plain one rearranged: same state_dict names, shapes and seeded values."""
    torch.manual_seed(11)
    plain = small_han("plain")
    torch.manual_seed(11)
    fast = small_han("fast")
    sp, sf = plain.state_dict(), fast.state_dict()
    assert list(sp) == list(sf)
    for name in sp:
        assert torch.equal(sp[name], sf[name]), name
    assert isinstance(plain.layers[0].self_attn, torch.nn.MultiheadAttention)


@pytest.mark.parametrize("train", [False, True])
def test_plain_and_fast_han_compute_the_same_outputs_and_gradients(train):
    """Dropout off (eval, or p = 0 in training): the two implementations are one function."""
    torch.manual_seed(0)
    plain = small_han("plain", dropout=0.0)
    fast = small_han("fast", dropout=0.0)
    fast.load_state_dict(plain.state_dict())
    plain.train(train), fast.train(train)
    audio, visual = han_inputs(b=3)

    def loss_of(out):
        return out.video_prob.sum() + out.seg_logits_a.square().mean() + out.seg_logits_v.abs().mean()

    out_p, out_f = plain(audio, visual), fast(audio, visual)
    for a, b in zip(out_p, out_f, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    grads_p = torch.autograd.grad(loss_of(out_p), list(plain.parameters()))
    grads_f = torch.autograd.grad(loss_of(out_f), list(fast.parameters()))
    for (name, _), g1, g2 in zip(plain.named_parameters(), grads_p, grads_f, strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def test_fast_dropout_rate_scale_determinism_and_gradient():
    from uwav.models.dropout import FastDropout

    drop = FastDropout(0.1)
    x = torch.ones(1000, 1000, requires_grad=True)
    torch.manual_seed(0)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002  # p to within 2^-17, sampled over 10^6 elements
    assert abs(y.mean().item() - 1.0) < 0.003  # unbiased: kept values scaled by 1 / (1 − p_eff)
    y.sum().backward()
    assert torch.equal(x.grad, (y.detach() != 0).float() * drop.scale)  # gradient follows the mask
    torch.manual_seed(0)
    assert torch.equal(drop(x).detach(), y.detach())  # seeded: reproducible
    drop.eval()
    assert drop(x) is x
    assert FastDropout(0.0).train()(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)
