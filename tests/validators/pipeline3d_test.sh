#!/bin/bash
# 3-D (tp-pp-dp) plans of a small GPT under MPI end to end (validators/pipeline_runner.*): stages of
# T = 2 ranks running their layers tensor-parallel (Megatron-LM's layouts as the planner writes
# them), 2 stages, on 4 ranks (R = 1) and 8 ranks (R = 2, ZeRO-1), oversubscribed; each checked
# against the sequential network (exit 0 only when the loss, every weight gradient and the SGD
# losses match to 1e-10 in double) and its byte ledger equal to the plan's calls, with the byte
# figures below computed by hand. Needs DNNPLAN (build/dnnplan, build/dnnplan-validate beside it).
net="$(dirname "$0")/data/gpt-pipe.json"
run_asserts='assert d["tensor"] == 2 and d["stages"] == 2
for s in d["per_stage"]:  # timed per stage
    assert s["measured"]["fwd_compute_s"] > 0 and s["measured"]["bwd_compute_s"] > 0, s'
. "$(dirname "$0")/gpt_pipe_harness.sh"
# Layer indices (gpt-pipe.json): wte 1, wpe 2, block k's ln_1 3 + 8k, attn 4 + 8k, add_1, ln_2,
# fc 7 + 8k, gelu, proj 9 + 8k, add_2 10 + 8k; h.2.ln_1 is 19, lm_head 36.
# The cut carries h.1.add_2's output, [b, 8 tokens, 32] floats: whole on every tensor rank (the
# planner's model), so it crosses scattered (Megatron-LM, Narayanan et al. SC'21 section 4.1):
# tensor rank t of stage 0 sends slice t, 1/T of it, to tensor rank t of stage 1, whose T = 2 ranks
# then all-gather the whole tensor; the gradient comes back the same way (slices from stage 1,
# all-gathered on stage 0). 2 micro-batches of 8 / (R 2) samples: R = 1: the whole tensor is
# 4 x 8 x 32 x 4 B = 4096 B, so 4096 / 2 = 2048 B per rank pair and a 4096 B all-gather over 2
# ranks; R = 2: 2048 B whole, 1024 B per pair; M = 2 calls of each, each way.
# Inside a stage (Megatron-LM, Shoeybi et al. 2019 section 3), per micro-batch: the attention's
# and proj's row-parallel outputs and the attention's and fc's column-parallel input gradients are
# all-reduced over the T = 2 ranks, each [b, 8, 32] floats (4096 B at b = 4); the vocabulary-split
# embedding's output too (wte, forward), and lm_head's input gradient (backward).
plan tp2pp2 4 2 --micro-batches 2 --schedule 1f1b
run tp2pp2 4 "
fwd = sorted((e['rank'], e['peer'], e['layer'], e['bytes'], e['measured_calls']) for e in entries(kind='point_to_point', phase='forward'))
assert fwd == [(0, 2, 19, 2048, 2), (1, 3, 19, 2048, 2)], fwd
bwd = sorted((e['rank'], e['peer'], e['layer'], e['bytes'], e['measured_calls']) for e in entries(kind='point_to_point', phase='backward'))
assert bwd == [(2, 0, 19, 2048, 2), (3, 1, 19, 2048, 2)], bwd
gather = sorted((e['rank'], e['phase'], e['layer'], e['bytes'], e['group_size'], e['measured_calls']) for e in entries(kind='all_gather'))
assert gather == [(0, 'backward', 19, 4096, 2, 2), (1, 'backward', 19, 4096, 2, 2),
                  (2, 'forward', 19, 4096, 2, 2), (3, 'forward', 19, 4096, 2, 2)], gather
tp = sorted((e['rank'], e['layer'], e['phase']) for e in entries(kind='all_reduce', group_size=2, bytes=4096, measured_calls=2))
want = [(r, l, ph) for r in (0, 1) for (l, ph) in [(1, 'forward'), (4, 'forward'), (4, 'backward'), (7, 'backward'), (9, 'forward'),
        (12, 'forward'), (12, 'backward'), (15, 'backward'), (17, 'forward')]]
want += [(r, l, ph) for r in (2, 3) for (l, ph) in [(20, 'forward'), (20, 'backward'), (23, 'backward'), (25, 'forward'),
         (28, 'forward'), (28, 'backward'), (31, 'backward'), (33, 'forward'), (36, 'backward')]]
assert tp == sorted(want), tp
assert d['orders'] == ['F0 F1 B0 B1'] * 2 + ['F0 B0 F1 B1'] * 2, d['orders']
"
# R = 2 on 8 ranks (rank t + 2 (s + 2 r)), ZeRO-1, GPipe: micro-batches of 8 / (2 x 2) = 2
# samples, so the cut carries 2 x 8 x 32 x 4 B = 2048 B, 2048 / 2 = 1024 B per rank pair and a
# 2048 B all-gather on the receiving stage, and each layer's gradient is
# reduce-scattered and its parameters all-gathered over the 2 replicas, per tensor rank, on the
# rank's shard (Megatron-LM's layout): h.0.fc (column-parallel, 32 -> 128 with bias) holds half the
# weight and half the bias, (128 x 32 / 2 + 64) x 4 B = 8448 B; h.0.proj (row-parallel, 128 -> 32)
# half the weight and the whole bias, (32 x 128 / 2 + 32) x 4 B = 8320 B; h.0.attn half of Wq, Wk,
# Wv, Wo and of the QKV biases, and the whole output bias: ((4 x 32 x 32 + 3 x 32) / 2 + 32) x 4 B
# = 8512 B; ln_1 its whole gamma and beta, 2 x 32 x 4 B = 256 B.
plan tp2pp2dp2 8 2 --micro-batches 2 --schedule gpipe --zero
run tp2pp2dp2 8 "
fwd = sorted((e['rank'], e['peer'], e['layer'], e['bytes'], e['measured_calls']) for e in entries(kind='point_to_point', phase='forward'))
assert fwd == [(0, 2, 19, 1024, 2), (1, 3, 19, 1024, 2), (4, 6, 19, 1024, 2), (5, 7, 19, 1024, 2)], fwd
got = sorted((e['rank'], e['phase'], e['bytes'], e['group_size'], e['measured_calls']) for e in entries(kind='all_gather', layer=19)
             if e['phase'] != 'sync')  # not h.2.ln_1's ZeRO-1 parameter all-gather
assert got == sorted([(r, 'backward', 2048, 2, 2) for r in (0, 1, 4, 5)] + [(r, 'forward', 2048, 2, 2) for r in (2, 3, 6, 7)]), got
for kind in ('reduce_scatter', 'all_gather'):
    for layer, b in ((7, 8448), (9, 8320), (4, 8512), (3, 256)):
        got = sorted((e['rank'], e['bytes'], e['group_size'], e['measured_calls']) for e in entries(kind=kind, layer=layer))
        assert got == [(r, b, 2, 1) for r in (0, 1, 4, 5)], (kind, layer, got)
assert d['orders'] == ['F0 F1 B0 B1'] * 8, d['orders']
"
# Interleaved 1F1B, V = 2 chunks per device (the planner's 4 virtual stages): with M = S = 2 every
# device warms up with all M V = 4 forwards (planner/schedule.hpp, interleaved_warmup), forward k
# on micro-batch k mod 2 of chunk k div 2, then the backwards from chunk V - 1 down.
"$DNNPLAN" plan --net "$net" --procs 4 --batch 8 --cluster cori-knl --tensor 2 --stages 2 --micro-batches 2 \
    --interleave 2 --out "$tmp/interleaved.json" >/dev/null || { echo "FAIL interleaved: dnnplan plan"; fail=1; }
run interleaved 4 "
assert d['orders'] == ['F0 F1 F0.1 F1.1 B0.1 B1.1 B0 B1'] * 4, d['orders']
assert len(entries(kind='point_to_point', phase='forward')) == 6, entries(kind='point_to_point', phase='forward')
# 3 boundaries between the 4 virtual stages, each all-gathered by its receiving T = 2 ranks, each way.
for ph in ('forward', 'backward'):
    assert len(entries(kind='all_gather', phase=ph)) == 6, entries(kind='all_gather', phase=ph)
"
# Full recomputation, M = 4 on 4 ranks: the redone forward repeats the stage's forward all-reduces,
# as the stage evaluator books them: 2 M = 8 calls of 8 / 4 x 8 x 32 x 4 B = 2048 B per forward
# all-reduce, M = 4 per backward one.
plan recompute 4 2 --micro-batches 4 --recompute full
run recompute 4 "
assert sorted(e['measured_calls'] for e in entries(kind='all_reduce', layer=4, bytes=2048)) == [4, 4, 8, 8]
assert d['recompute'] == 'full'
"
exit $fail
