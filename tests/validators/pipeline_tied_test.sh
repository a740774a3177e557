#!/bin/bash
# Tied weights in pipeline plans under MPI (validators/pipeline_runner.*): the small GPT of
# gpt-pipe-tied.json (lm_head tied to wte) split in 2 stages, so wte runs on stage 0 and lm_head on
# stage 1. As Megatron-LM runs it, stage 1 keeps a copy of wte's shard (started equal by one
# all-reduce over the embedding group) and, after the replicas' gradient syncs, tensor rank t of
# stage 0 and tensor rank t of stage 1 all-reduce the tied gradient
# (megatron/core/distributed/finalize_model_grads.py, _allreduce_word_embedding_grads). Each run is
# checked against the sequential network, whose tied gradient is the sum of both uses (exit 0 only
# when the loss, every weight gradient, the copy's included, and the SGD losses match to 1e-10 in
# double) and its byte ledger must equal the plan's calls, the embedding group's all-reduce with the
# byte figures below computed by hand. Needs DNNPLAN (build/dnnplan, build/dnnplan-validate beside it).
net="$(dirname "$0")/data/gpt-pipe-tied.json"
# The embedding group's all-reduce, ledgered on lm_head (layer 36): one call per iteration on each
# rank of both stages, planned and measured.
run_asserts="tied = sorted((e['rank'], e['bytes'], e['group_size'], e['measured_calls'], e['planned_calls'])
              for e in entries(kind='all_reduce', phase='sync', layer=36, group_size=2) if e.get('peer', -1) == -1)"
. "$(dirname "$0")/gpt_pipe_harness.sh"
# T = 2, S = 2 on 4 ranks (rank t + 2 s): wte's shard is V / T x h = 64 / 2 x 32 floats = 4096 B
# (Megatron's vocabulary-parallel split; lm_head's copy is the same block of the vocabulary), so
# tensor rank t of stage 0 (rank t) and of stage 1 (rank t + 2) all-reduce 4096 B, a group of 2.
# With one replica there is no other sync of wte or of the copy.
plan tp2pp2 4 2 --micro-batches 2 --schedule 1f1b
run tp2pp2 4 "
assert tied == [(r, 4096, 2, 1, 1) for r in (0, 1, 2, 3)], tied
assert not entries(layer=1, phase='sync') and not entries(layer=36, kind='reduce_scatter'), led['entries']
"
# T = 1, S = 2 on 2 ranks: the whole table, 64 x 32 floats = 8192 B, between rank 0 and rank 1.
plan tp1pp2 2 1 --micro-batches 2 --schedule gpipe
run tp1pp2 2 "
assert tied == [(0, 8192, 2, 1, 1), (1, 8192, 2, 1, 1)], tied
"
# R = 2 with ZeRO-1 on 8 ranks (rank t + 2 (s + 2 r)): wte's gradient (4096 B per tensor rank) and
# the copy's are each reduce-scattered over the 2 replicas (their parameters all-gathered after the
# update), and between the two the embedding group all-reduces the whole 4096 B buffer (each
# replica's slice summed, zeros elsewhere), per tensor rank and replica.
plan tp2pp2dp2 8 2 --micro-batches 2 --schedule 1f1b --zero
run tp2pp2dp2 8 "
assert tied == [(r, 4096, 2, 1, 1) for r in range(8)], tied
for layer, ranks in ((1, (0, 1, 4, 5)), (36, (2, 3, 6, 7))):
    for kind in ('reduce_scatter', 'all_gather'):
        got = sorted((e['rank'], e['bytes'], e['measured_calls']) for e in entries(kind=kind, layer=layer, phase='sync'))
        assert got == [(r, 4096, 1) for r in ranks], (kind, layer, got)
"
# Interleaved 1F1B, V = 2 chunks per device: wte is on chunk 0 of device 0, lm_head on chunk 1 of
# device 1 (virtual stage 3), so the same 4096 B all-reduce pairs ranks t and t + 2.
"$DNNPLAN" plan --net "$net" --procs 4 --batch 8 --cluster cori-knl --tensor 2 --stages 2 --micro-batches 2 \
    --interleave 2 --out "$tmp/interleaved.json" >/dev/null 2>&1 || { echo "FAIL interleaved: dnnplan plan"; fail=1; }
run interleaved 4 "
assert tied == [(r, 4096, 2, 1, 1) for r in (0, 1, 2, 3)], tied
"
exit $fail
