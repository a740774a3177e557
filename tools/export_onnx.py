#!/usr/bin/python3
"""Exports torchvision's alexnet, vgg16 and resnet50 to ONNX and strips the weights.

Run with Debian's interpreter (python3-torch, python3-torchvision, python3-onnx):

    /usr/bin/python3 tools/export_onnx.py [OUT_DIR]      # default tests/data/onnx
    /usr/bin/python3 tools/export_onnx.py --test-fixtures [OUT_DIR]

The second form writes the hand-built test models instead: OUT_DIR/ops.onnx (a small graph of
the operators torchvision's CNNs do not use, with a dynamic batch and a Shape -> Reshape chain),
OUT_DIR/unknown_op.onnx and the broken models of OUT_DIR/bad/.

The models are exported in training mode so that Dropout and BatchNormalization stay separate
nodes (an eval-mode export drops Dropout and folds BatchNormalization into the convolutions,
which is not the network one trains). The batch dimension is dynamic ("batch"), so `--batch`
chooses it. Every float initializer with more than 16 elements then loses its data but keeps
its dims and type: the fixtures hold the topology and the shapes (a few KB) instead of the
weights (hundreds of MB). Small initializers (shape constants, scalars) are kept as they are.
"""
import os
import sys
import warnings

import onnx
import torch
import torchvision

MODELS = ("alexnet", "vgg16", "resnet50")
KEEP_ELEMENTS = 16  # float initializers up to this size keep their data


def strip_initializers(model):
    stripped = 0
    for tensor in model.graph.initializer:
        elements = 1
        for d in tensor.dims:
            elements *= d
        if tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                                onnx.TensorProto.BFLOAT16) and elements > KEEP_ELEMENTS:
            tensor.ClearField("raw_data")
            tensor.ClearField("float_data")
            tensor.ClearField("double_data")
            tensor.ClearField("int32_data")
            stripped += 1
    model.doc_string = ("topology-only export of torchvision.models (initializer data stripped by "
                        "tools/export_onnx.py; dims kept)")
    return stripped


def export(name, out_dir):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    model.train()
    sample = torch.randn(1, 3, 224, 224)
    path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, sample, path, opset_version=13, training=torch.onnx.TrainingMode.TRAINING,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load(path)
    stripped = strip_initializers(proto)
    onnx.save(proto, path)
    params = sum(p.numel() for p in model.parameters())
    print(f"{path}: {len(proto.graph.node)} nodes, {stripped} initializers stripped, "
          f"{os.path.getsize(path)} bytes; torch counts {params} parameters")


def make_test_fixtures(out_dir):
    from onnx import TensorProto, helper

    def model(nodes, inputs, outputs, initializers=(), opset=13, name="fixture"):
        graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
        opsets = [helper.make_opsetid("", opset)]
        if any(n.domain for n in nodes):
            opsets.append(helper.make_opsetid("com.example", 1))
        return helper.make_model(graph, opset_imports=opsets, producer_name="dnnplan-tests")

    def weight(name, dims, data_type=TensorProto.FLOAT):  # dims only, like the stripped exports
        tensor = TensorProto(name=name, data_type=data_type)
        tensor.dims.extend(dims)
        return tensor

    def floats(name, values):
        return helper.make_tensor(name, TensorProto.FLOAT, [len(values)], values)

    def ints(name, values):
        return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)

    f32 = TensorProto.FLOAT
    os.makedirs(os.path.join(out_dir, "bad"), exist_ok=True)

    # ops.onnx: input [batch, 8, 16] (a sequence of 8 tokens of 16 features), then
    # LayerNormalization, MatMul + Add (a linear layer in two nodes), Softmax over the last axis,
    # a MatMul of two activations (x x^T), Transpose, Shape -> Gather -> Concat -> Reshape
    # (flatten with a dynamic batch), Clip, HardSigmoid, Gemm, Concat, Pad and Dropout.
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln_scale", "ln_bias"], ["ln"], name="ln", axis=-1),
        helper.make_node("MatMul", ["ln", "w1"], ["mm"], name="proj"),
        helper.make_node("Add", ["mm", "b1"], ["proj_out"], name="proj_bias"),
        helper.make_node("Softmax", ["proj_out"], ["sm"], name="softmax", axis=-1),
        helper.make_node("Transpose", ["sm"], ["smT"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["sm", "smT"], ["scores"], name="scores"),
        helper.make_node("Shape", ["scores"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], name="batch", axis=0),
        helper.make_node("Concat", ["batch", "minus_one"], ["flat_shape"], name="flat_shape", axis=0),
        helper.make_node("Reshape", ["scores", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Clip", ["flat", "lo", "hi"], ["clipped"], name="clip"),
        helper.make_node("HardSigmoid", ["clipped"], ["hs"], name="hardsigmoid"),
        helper.make_node("Gemm", ["hs", "w2", "b2"], ["fc"], name="fc", transB=1),
        helper.make_node("Concat", ["fc", "fc"], ["cat"], name="cat", axis=1),
        helper.make_node("Pad", ["cat", "pads"], ["padded"], name="pad"),
        helper.make_node("Dropout", ["padded", "ratio"], ["out"], name="dropout"),
    ]
    inits = [weight("ln_scale", [16]), weight("ln_bias", [16]), weight("w1", [16, 32]), weight("b1", [32]),
             helper.make_tensor("zero", TensorProto.INT64, [1], [0]), ints("minus_one", [-1]),
             helper.make_tensor("lo", f32, [], [0.0]), helper.make_tensor("hi", f32, [], [6.0]),
             weight("w2", [10, 64]), weight("b2", [10]), ints("pads", [0, 1, 0, 3]),
             helper.make_tensor("ratio", f32, [], [0.25])]
    m = model(nodes, [helper.make_tensor_value_info("x", f32, ["batch", 8, 16])],
              [helper.make_tensor_value_info("out", f32, ["batch", 24])], inits, opset=17)
    onnx.save(m, os.path.join(out_dir, "ops.onnx"))

    # unknown_op.onnx: two nodes of an ONNX operator dnnplan does not know (Selu), one of a custom
    # domain that ONNX's shape inference does not know either, and one dnnplan knows.
    nodes = [helper.make_node("Selu", ["x"], ["a"], name="selu_a"), helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("FancyNorm", ["b"], ["c"], name="fancy", domain="com.example"),
             helper.make_node("Selu", ["c"], ["y"], name="selu_b")]
    m = model(nodes, [helper.make_tensor_value_info("x", f32, ["batch", 4, 6, 6])],
              [helper.make_tensor_value_info("y", f32, ["batch", 4, 6, 6])])
    onnx.save(m, os.path.join(out_dir, "unknown_op.onnx"))

    # shared_weight.onnx: two Gemm nodes share one weight and bias (counted once).
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w", "b"], ["y"], name="fc2", transB=1)]
    m = model(nodes, [helper.make_tensor_value_info("x", f32, ["batch", 16])],
              [helper.make_tensor_value_info("y", f32, ["batch", 16])], [weight("w", [16, 16]), weight("b", [16])])
    onnx.save(m, os.path.join(out_dir, "shared_weight.onnx"))

    # same_pad.onnx: a Conv with auto_pad SAME_UPPER and an even kernel (pads 1 before, 2 after)
    # and a MaxPool padded only at the end, on a fixed batch of 4.
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[4, 4], auto_pad="SAME_UPPER"),
             helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2],
                              pads=[0, 0, 1, 1])]
    m = model(nodes, [helper.make_tensor_value_info("x", f32, [4, 2, 8, 8])],
              [helper.make_tensor_value_info("y", f32, [4, 3, 4, 4])], [weight("w", [3, 2, 4, 4]), weight("b", [3])])
    onnx.save(m, os.path.join(out_dir, "same_pad.onnx"))

    # activations.onnx: GELU written out with Erf (as torch exports nn.GELU before opset 20) and SiLU
    # as Sigmoid then Mul, each imported as one layer.
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["d"], name="gelu_div"),
             helper.make_node("Erf", ["d"], ["e"], name="gelu_erf"),
             helper.make_node("Add", ["e", "one"], ["a"], name="gelu_add"),
             helper.make_node("Mul", ["x", "a"], ["m"], name="gelu_mul"),
             helper.make_node("Mul", ["m", "half"], ["g"], name="gelu"),
             helper.make_node("Sigmoid", ["g"], ["s"], name="silu_sigmoid"),
             helper.make_node("Mul", ["g", "s"], ["y"], name="silu")]
    m = model(nodes, [helper.make_tensor_value_info("x", f32, ["batch", 16])],
              [helper.make_tensor_value_info("y", f32, ["batch", 16])],
              [helper.make_tensor("sqrt2", f32, [], [2 ** 0.5]), helper.make_tensor("one", f32, [], [1.0]),
               helper.make_tensor("half", f32, [], [0.5])])
    onnx.save(m, os.path.join(out_dir, "activations.onnx"))

    relu = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    io = ([helper.make_tensor_value_info("x", f32, ["batch", 3, 8, 8])],
          [helper.make_tensor_value_info("y", f32, ["batch", 3, 8, 8])])
    # An opset newer than ONNX 1.12 knows (17).
    onnx.save(model(relu, *io, opset=99), os.path.join(out_dir, "bad", "opset_too_new.onnx"))
    # Only the batch may be dynamic: a symbolic image height has no per-sample shape.
    onnx.save(model(relu, [helper.make_tensor_value_info("x", f32, ["batch", 3, "height", 8])],
                    [helper.make_tensor_value_info("y", f32, ["batch", 3, "height", 8])]),
              os.path.join(out_dir, "bad", "symbolic_height.onnx"))
    # A Reshape whose target shape has no data: shape inference cannot give its output.
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "target"], ["y"], name="reshape")]
    onnx.save(model(nodes, io[0], [helper.make_tensor_value_info("y", f32, None)],
                    [weight("target", [2], TensorProto.INT64)]),
              os.path.join(out_dir, "bad", "uninferable_reshape.onnx"))
    # The first 3000 bytes of the AlexNet export: cut inside a field.
    with open(os.path.join(out_dir, "alexnet.onnx"), "rb") as src:
        data = src.read()
    with open(os.path.join(out_dir, "bad", "truncated.onnx"), "wb") as dst:
        dst.write(data[:3000])
    # A text file with the .onnx extension.
    with open(os.path.join(out_dir, "bad", "not_onnx.onnx"), "w") as dst:
        dst.write("this is not an ONNX model\n")


def export_tiny_gpt(out_dir):
    """A one-block GPT written the batch-first way (view(B, S, heads, d).transpose(1, 2)), whose
    Reshape targets are computed with Shape, Gather, Div and Cast: what libonnx's own data
    propagation cannot fold and the importer folds itself. torch.nn.MultiheadAttention is not used:
    it folds the batch into the heads ([S, B * heads, d]), which a per-sample IR cannot represent."""
    import math

    class Block(torch.nn.Module):
        def __init__(self, e=64, heads=4):
            super().__init__()
            self.heads = heads
            self.ln1, self.ln2 = torch.nn.LayerNorm(e), torch.nn.LayerNorm(e)
            self.qkv, self.proj = torch.nn.Linear(e, 3 * e), torch.nn.Linear(e, e)
            self.fc1, self.fc2 = torch.nn.Linear(e, 4 * e), torch.nn.Linear(4 * e, e)
            self.act, self.drop = torch.nn.GELU(), torch.nn.Dropout(0.1)

        def forward(self, x):
            b, s, e = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(e, dim=2)
            q, k, v = (t.view(b, s, self.heads, e // self.heads).transpose(1, 2) for t in (q, k, v))
            att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(e // self.heads), dim=-1)
            y = (att @ v).transpose(1, 2).reshape(b, s, e)
            x = x + self.drop(self.proj(y))
            return x + self.drop(self.fc2(self.act(self.fc1(self.ln2(x)))))

    class TinyGPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.block, self.head = torch.nn.Embedding(1000, 64), Block(), torch.nn.Linear(64, 1000)

        def forward(self, tokens):
            return self.head(self.block(self.emb(tokens)))

    torch.manual_seed(0)
    model = TinyGPT().train()
    path = os.path.join(out_dir, "tiny_gpt.onnx")
    torch.onnx.export(model, torch.randint(0, 1000, (2, 32)), path, opset_version=17,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False, input_names=["tokens"],
                      output_names=["logits"], dynamic_axes={"tokens": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load(path)
    strip_initializers(proto)
    onnx.save(proto, path)
    print(f"{path}: torch counts {sum(p.numel() for p in model.parameters())} parameters")


def main():
    # torch's exporter warns once per BatchNorm that it drops num_batches_tracked (not a parameter).
    warnings.filterwarnings("ignore")
    args = sys.argv[1:]
    fixtures = "--test-fixtures" in args
    args = [a for a in args if a != "--test-fixtures"]
    out_dir = os.path.normpath(args[0] if args else os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                                 "onnx"))
    os.makedirs(out_dir, exist_ok=True)
    if fixtures:
        return make_test_fixtures(out_dir)
    for name in MODELS:
        export(name, out_dir)
    export_tiny_gpt(out_dir)


if __name__ == "__main__":
    main()
