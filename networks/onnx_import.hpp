// ONNX import: turns an ONNX ModelProto (read with Debian's libonnx and protobuf) into the same
// networks::Network the JSON spec loader builds. Compute layers (Conv, Gemm, pooling, norms,
// activations, ...) are inferred by the JSON loader's own per-layer inference (networks/infer.hpp),
// so shapes, parameters and FLOPs follow exactly the rules of networks/README.md; ONNX's shape
// inference gives the shapes of pure data-movement operators and cross-checks every layer's output shape.
#pragma once

#include <cstdint>
#include <string>

#include "networks/network.hpp"

namespace dnnplan::networks {

// The newest default-domain opset this build understands (libonnx's operator registry).
int onnx_max_supported_opset();

// Reads FILE (a binary ONNX model, at most 2 GiB: protobuf's limit) and imports it. Every problem
// (unreadable, truncated, not ONNX, opset too new, unsupported operators, shapes that cannot be
// inferred) is an InputError naming the file and, where there is one, the node.
Network load_onnx_file(const std::string& path, const LoadOptions& options = {});

// Imports a serialized ModelProto; `file` names it in diagnostics.
Network parse_onnx_model(const std::string& bytes, const std::string& file, const LoadOptions& options = {});

}  // namespace dnnplan::networks
