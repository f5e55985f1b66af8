"""The official WanModel_S2V forward (Wan-Video/Wan2.2 wan/modules/s2v/model_s2v.py,
audio_utils.py, auxi_blocks.py, motioner.py, s2v_utils.py) with Wan2.2-S2V-14B's options,
restated step by step as plain functions over the OFFICIAL state dict names, for tests
only: its loops, index arithmetic (rope_precompute's linspace sampling) and module order
follow the published code, not our modules, so that our S2VTransformer can be checked
against it. float32, batch 1, SDPA for flash attention."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class Official:
    def __init__(self, sd: dict[str, torch.Tensor], cfg: dict):
        self.sd, self.cfg = sd, cfg
        self.dim, self.heads = cfg["dim"], cfg["num_heads"]
        d = self.dim // self.heads
        self.freqs = torch.cat([rope_params(1024, d - 4 * (d // 6)),
                                rope_params(1024, 2 * (d // 6)),
                                rope_params(1024, 2 * (d // 6))], dim=1)
        self.inject = {layer: j for j, layer in enumerate(cfg["audio_inject_layers"])}

    # -------------------------------------------------------------- module pieces
    def linear(self, x, p):
        return F.linear(x, self.sd[p + ".weight"], self.sd[p + ".bias"])

    def rms(self, x, p, eps=1e-6):
        return (x.float() * torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True)
                                        + eps)).type_as(x) * self.sd[p + ".weight"]

    def conv3d(self, x, p):
        w = self.sd[p + ".weight"]
        return F.conv3d(x, w, self.sd[p + ".bias"], stride=tuple(w.shape[2:]))

    def causal_conv(self, x, p, stride=1):
        x = F.pad(x, (2, 0), mode="replicate")
        return F.conv1d(x, self.sd[p + ".conv.weight"], self.sd[p + ".conv.bias"], stride=stride)

    def attention(self, x, context, p, freqs=None):
        b, n = x.shape[0], self.heads
        q = self.rms(self.linear(x, p + ".q"), p + ".norm_q").view(b, x.shape[1], n, -1)
        k = self.rms(self.linear(context, p + ".k"), p + ".norm_k").view(b, context.shape[1], n, -1)
        v = self.linear(context, p + ".v").view(b, context.shape[1], n, -1)
        if freqs is not None:
            q, k = rope_apply(q, freqs), rope_apply(k, freqs)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                             v.transpose(1, 2))
        return self.linear(out.transpose(1, 2).flatten(2), p + ".o")

    # -------------------------------------------------------------- CausalAudioEncoder
    def audio_encoder(self, features):
        sd, p = self.sd, "casual_audio_encoder.encoder"
        weights = F.silu(sd["casual_audio_encoder.weights"])
        x = ((features * weights) / weights.sum(dim=1, keepdims=True)).sum(dim=1).permute(0, 2, 1)
        x = x.permute(0, 2, 1)  # MotionEncoder_tc: "b t c -> b c t"
        x_ori, b, heads = x.clone(), x.shape[0], self.cfg["num_audio_token"]

        def tail(x):
            x = F.silu(F.layer_norm(x, x.shape[-1:], eps=1e-6)).transpose(1, 2)
            x = self.causal_conv(x, p + ".conv2", 2).transpose(1, 2)
            x = F.silu(F.layer_norm(x, x.shape[-1:], eps=1e-6)).transpose(1, 2)
            x = self.causal_conv(x, p + ".conv3", 2).transpose(1, 2)
            return F.silu(F.layer_norm(x, x.shape[-1:], eps=1e-6))
        x = self.causal_conv(x, p + ".conv1_local")                       # b (n c) t
        x = x.view(b, heads, -1, x.shape[-1]).flatten(0, 1).transpose(1, 2)  # (b n) t c
        x = tail(x)
        x = x.view(b, heads, *x.shape[1:]).transpose(1, 2)                # b t n c
        x = torch.cat([x, sd[p + ".padding_tokens"].repeat(b, x.shape[1], 1, 1)], dim=-2)
        g = tail(self.causal_conv(x_ori, p + ".conv1_global").transpose(1, 2))
        g = self.linear(g, p + ".final_linear").unsqueeze(2)               # b t 1 c
        return g, x

    # -------------------------------------------------------------- FramePackMotioner
    def frame_pack(self, m):
        buckets = torch.tensor([1, 2, 16])
        lat_h, lat_w = m.shape[2], m.shape[3]
        padd_lat = torch.zeros(16, int(buckets.sum()), lat_h, lat_w)
        overlap = min(padd_lat.shape[1], m.shape[1])
        if overlap > 0:
            padd_lat[:, -overlap:] = m[:, -overlap:]
        padd_lat = padd_lat.unsqueeze(0)
        c4, c2, post = padd_lat[:, :, -int(buckets.sum()):].split([16, 2, 1], dim=2)
        post = self.conv3d(post, "frame_packer.proj").flatten(2).transpose(1, 2)
        c2 = self.conv3d(c2, "frame_packer.proj_2x").flatten(2).transpose(1, 2)
        c4 = self.conv3d(c4, "frame_packer.proj_4x").flatten(2).transpose(1, 2)
        motion_lat = torch.cat([post, c2, c4], dim=1)
        t = lambda *v: torch.tensor(list(v)).unsqueeze(0)  # noqa: E731
        start = -buckets[:1].sum()
        grid = [[t(start, 0, 0), t(start + buckets[0], lat_h // 2, lat_w // 2),
                 t(buckets[0], lat_h // 2, lat_w // 2)]]
        start = -buckets[:2].sum()
        grid += [[t(start, 0, 0), t(start + buckets[1] // 2, lat_h // 4, lat_w // 4),
                  t(buckets[1], lat_h // 2, lat_w // 2)]]
        start = -buckets[:3].sum()
        grid += [[t(start, 0, 0), t(start + buckets[2] // 4, lat_h // 8, lat_w // 8),
                  t(buckets[2], lat_h // 2, lat_w // 2)]]
        remb = rope_precompute(motion_lat.view(1, motion_lat.shape[1], self.heads, -1), grid,
                               self.freqs)
        return motion_lat, remb

    # -------------------------------------------------------------- WanS2VAttentionBlock
    def block(self, i, x, e, freqs, context):
        p, sd = f"blocks.{i}", self.sd
        seg_idx = [0, min(max(0, e[1]), x.size(1)), x.size(1)]
        e = (sd[p + ".modulation"].unsqueeze(2) + e[0]).chunk(6, dim=1)
        e = [el.squeeze(1) for el in e]
        norm_x = F.layer_norm(x.float(), (self.dim,), eps=1e-6)
        norm_x = torch.cat([norm_x[:, seg_idx[k]:seg_idx[k + 1]] * (1 + e[1][:, k:k + 1])
                            + e[0][:, k:k + 1] for k in range(2)], dim=1)
        y = self.attention(norm_x, norm_x, p + ".self_attn", freqs)
        x = x + torch.cat([y[:, seg_idx[k]:seg_idx[k + 1]] * e[2][:, k:k + 1] for k in range(2)],
                          dim=1)
        n3 = F.layer_norm(x.float(), (self.dim,), sd[p + ".norm3.weight"], sd[p + ".norm3.bias"],
                          1e-6)
        x = x + self.attention(n3, context, p + ".cross_attn")
        norm2_x = F.layer_norm(x.float(), (self.dim,), eps=1e-6)
        norm2_x = torch.cat([norm2_x[:, seg_idx[k]:seg_idx[k + 1]] * (1 + e[4][:, k:k + 1])
                             + e[3][:, k:k + 1] for k in range(2)], dim=1)
        y = self.linear(F.gelu(self.linear(norm2_x, p + ".ffn.0"), approximate="tanh"),
                        p + ".ffn.2")
        return x + torch.cat([y[:, seg_idx[k]:seg_idx[k + 1]] * e[5][:, k:k + 1]
                              for k in range(2)], dim=1)

    def after_block(self, idx, x, seq_len, audio_emb, audio_global):
        if idx not in self.inject:
            return x
        j, frames = self.inject[idx], audio_emb.shape[1]
        h = x[:, :seq_len].clone().reshape(frames, -1, self.dim)              # (b t) n c
        temb = self.linear(F.silu(audio_global.reshape(frames, 1, -1)[:, 0]),
                           f"audio_injector.injector_adain_layers.{j}.linear")
        shift, scale = temb.chunk(2, dim=1)
        h = F.layer_norm(h, (self.dim,), eps=1e-5) * (1 + scale[:, None]) + shift[:, None]
        ctx = audio_emb.reshape(frames, -1, self.dim)
        out = self.attention(h, ctx, f"audio_injector.injector.{j}").reshape(1, -1, self.dim)
        x = x.clone()
        x[:, :seq_len] = x[:, :seq_len] + out
        return x

    # -------------------------------------------------------------- WanModel_S2V.forward
    def forward(self, x, t, context, ref_latents, motion_latents, audio_input, drop_motion_frames,
                cond_states=None):
        """x (16, T, h, w), context (L, C), ref (16, 1, h, w), motion (16, 19, h, w),
        audio_input (1, layers, C_a, 4T), cond_states (16, T, h, w) (None: the official
        COND[0] * 0, zeros); returns (16, T, h, w)."""
        sd, dim = self.sd, self.dim
        audio_input = torch.cat([audio_input[..., 0:1].repeat(1, 1, 1, 73), audio_input], dim=-1)
        audio_global, audio_emb = self.audio_encoder(audio_input)
        audio_global, audio_emb = audio_global[:, 19:], audio_emb[:, 19:]
        cond_states = torch.zeros_like(x) if cond_states is None else cond_states
        x = self.conv3d(x.unsqueeze(0), "patch_embedding")
        x = x + self.conv3d(cond_states.unsqueeze(0), "cond_encoder")
        grid_sizes = torch.tensor([list(x.shape[2:])], dtype=torch.long)
        x = x.flatten(2).transpose(1, 2)
        seq_len = x.shape[1]
        grids = [[torch.zeros_like(grid_sizes), grid_sizes, grid_sizes]]
        ref = self.conv3d(ref_latents.unsqueeze(0), "patch_embedding")
        h, w = ref.shape[3], ref.shape[4]
        grids += [[torch.tensor([[30, 0, 0]]), torch.tensor([[31, h, w]]),
                   torch.tensor([[1, h, w]])]]
        x = torch.cat([x, ref.flatten(2).transpose(1, 2)], dim=1)
        mask = torch.zeros([1, x.shape[1]], dtype=torch.long)
        mask[:, seq_len:] = 1
        freqs = rope_precompute(x.view(1, x.shape[1], self.heads, -1), grids, self.freqs)
        mot, remb = self.frame_pack(motion_latents)
        if drop_motion_frames:
            mot, remb = mot[:, :0], remb[:, :0]
        x = torch.cat([x, mot], dim=1)
        freqs = torch.cat([freqs, remb], dim=1)
        mask = torch.cat([mask, 2 * torch.ones([1, x.shape[1] - mask.shape[1]], dtype=torch.long)],
                         dim=1)
        x = x + F.embedding(mask, sd["trainable_cond_mask.weight"])
        t = torch.cat([t, torch.zeros([1], dtype=t.dtype)])
        e = self.linear(F.silu(self.linear(sinusoidal(256, t).float(), "time_embedding.0")),
                        "time_embedding.2")
        e0 = self.linear(F.silu(e), "time_projection.1").unflatten(1, (6, dim))
        e, zero_e0, e0 = e[:-1], e0[-1:], e0[:-1]
        e0 = [torch.cat([e0.unsqueeze(2), zero_e0.unsqueeze(2).repeat(e0.size(0), 1, 1, 1)], dim=2),
              seq_len]
        context = torch.cat([context, context.new_zeros(self.cfg["text_len"] - context.shape[0],
                                                        context.shape[1])])
        context = self.linear(F.gelu(self.linear(context[None], "text_embedding.0"),
                                     approximate="tanh"), "text_embedding.2")
        for idx in range(self.cfg["num_layers"]):
            x = self.block(idx, x, e0, freqs, context)
            x = self.after_block(idx, x, seq_len, audio_emb, audio_global)
        x = x[:, :seq_len]
        mod = (sd["head.modulation"] + e.unsqueeze(1)).chunk(2, dim=1)
        x = self.linear(F.layer_norm(x, (dim,), eps=1e-6) * (1 + mod[1]) + mod[0], "head.head")
        f, hh, ww = grid_sizes[0].tolist()
        u = x[0, :f * hh * ww].view(f, hh, ww, 1, 2, 2, 16)
        return torch.einsum("fhwpqrc->cfphqwr", u).reshape(16, f, hh * 2, ww * 2)


def rope_params(max_seq_len, dim, theta=10000):
    freqs = torch.outer(torch.arange(max_seq_len),
                        1.0 / torch.pow(theta, torch.arange(0, dim, 2).to(torch.float64).div(dim)))
    return torch.polar(torch.ones_like(freqs), freqs)


def sinusoidal(dim, position):
    half = dim // 2
    position = position.type(torch.float64)
    sinusoid = torch.outer(position, torch.pow(10000, -torch.arange(half).to(position).div(half)))
    return torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1)


def rope_precompute(x, grid_sizes, freqs):
    b, s, n, c = x.size(0), x.size(1), x.size(2), x.size(3) // 2
    freqs = freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    output = torch.view_as_complex(x.detach().reshape(b, s, n, -1, 2).to(torch.float64))
    seq_bucket = [0]
    for g in grid_sizes:
        for i in range(g[0].shape[0]):
            f_o, h_o, w_o = g[0][i]
            f, h, w = g[1][i]
            t_f, t_h, t_w = g[2][i]
            seq_f, seq_h, seq_w = f - f_o, h - h_o, w - w_o
            seq_len = int(seq_f * seq_h * seq_w)
            if seq_len > 0:
                if f_o >= 0:
                    f_sam = np.linspace(f_o.item(), (t_f + f_o).item() - 1,
                                        int(seq_f)).astype(int).tolist()
                else:
                    f_sam = np.linspace(-f_o.item(), (-t_f - f_o).item() + 1,
                                        int(seq_f)).astype(int).tolist()
                h_sam = np.linspace(h_o.item(), (t_h + h_o).item() - 1,
                                    int(seq_h)).astype(int).tolist()
                w_sam = np.linspace(w_o.item(), (t_w + w_o).item() - 1,
                                    int(seq_w)).astype(int).tolist()
                freqs_0 = freqs[0][f_sam] if f_o >= 0 else freqs[0][f_sam].conj()
                freqs_0 = freqs_0.view(int(seq_f), 1, 1, -1)
                sf, sh, sw = int(seq_f), int(seq_h), int(seq_w)
                freqs_i = torch.cat([freqs_0.expand(sf, sh, sw, -1),
                                     freqs[1][h_sam].view(1, sh, 1, -1).expand(sf, sh, sw, -1),
                                     freqs[2][w_sam].view(1, 1, sw, -1).expand(sf, sh, sw, -1)],
                                    dim=-1).reshape(seq_len, 1, -1)
                output[i, seq_bucket[-1]:seq_bucket[-1] + seq_len] = freqs_i
        seq_bucket.append(seq_bucket[-1] + seq_len)
    return output


def rope_apply(x, freqs):
    s, n = x.size(1), x.size(2)
    x_i = torch.view_as_complex(x[0, :s].to(torch.float64).reshape(s, n, -1, 2))
    return torch.view_as_real(x_i * freqs[0, :s]).flatten(2).unsqueeze(0).float()
