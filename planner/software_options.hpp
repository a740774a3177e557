// What the training software does that the planner cannot choose but must cost: how it adds each
// micro-batch's weight gradients (GradAccumulation), how its mixed-precision optimizer step passes
// over the parameters (MixedPrecisionStep; both planner/compute.hpp) and how its pipeline engine
// moves stage-boundary tensors (PipelineBoundarySend). Their names on the command line and in plan
// files ("hook", "deepspeed", "scatter-gather", ...) are here, one spelling for both.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "planner/compute.hpp"

namespace dnnplan::planner {

// How a tensor crossing a pipeline-stage boundary moves between the T ranks of two stages (the
// stage evaluator's boundary communication, planner/stage_evaluator.cpp boundaries()):
// - scatter_gather: Megatron-LM's default (Narayanan et al. SC'21 section 4.1; megatron/
//   p2p_communication.py, `--no-scatter-gather-tensors-in-pipeline` unset): a tensor replicated
//   over the T ranks crosses as T slices of 1/T, one per rank pair, and the receiving stage
//   all-gathers it; the send and the receive of a step run together (batch_isend_irecv).
// - whole_tensor: Megatron-LM with `--no-scatter-gather-tensors-in-pipeline`: every rank sends the
//   whole tensor to its counterpart, no all-gather.
// - deepspeed: DeepSpeed's pipeline engine (v0.5.8, deepspeed/runtime/pipe/engine.py, the MT-NLG
//   runs): with tensor parallelism the first output is a PartitionedTensor over the tensor group
//   (is_pipe_partitioned = is_model_parallel; 1/T per rank, PartitionedTensor.full() all-gathers
//   it in the receiver's _exec_forward_pass, the gradient likewise in _exec_backward_pass), as
//   scatter_gather; but each send and receive is a blocking p2p.send / p2p.recv of its own
//   (p2p.py: dist.send, dist.recv) issued one after the other (schedule.py TrainSchedule: a
//   forward step runs RecvActivation then SendGrad, a backward step SendActivation then
//   RecvGrad), so a stage also waits for its own sends; and the sender, which dropped its output
//   after partitioning it (`first_output.data = torch.zeros(1)`), all-gathers it again before
//   its backward (_exec_backward_pass: `part_output.full()`).
enum class PipelineBoundarySend { scatter_gather, whole_tensor, deepspeed };

std::string to_string(PipelineBoundarySend send);  // "scatter-gather", "whole-tensor", "deepspeed"
std::optional<PipelineBoundarySend> parse_boundary_send(const std::string& name);
const std::vector<std::string>& boundary_send_names();

std::string to_string(GradAccumulation accumulation);  // "in-gemm", "autograd", "hook"
std::optional<GradAccumulation> parse_grad_accumulation(const std::string& name);
const std::vector<std::string>& grad_accumulation_names();

std::string to_string(MixedPrecisionStep step);  // "megatron", "deepspeed"
std::optional<MixedPrecisionStep> parse_mixed_precision_step(const std::string& name);
const std::vector<std::string>& mixed_precision_step_names();

}  // namespace dnnplan::planner
