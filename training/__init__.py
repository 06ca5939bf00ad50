"""Training side: Label Studio exports -> datasets -> S4L model -> metrics -> ONNX.

Importing this package (or its torch-free modules: schema, propagation, export_reader,
frame_source, ls_auth, preprocess, metrics, onnx_runner) must never import torch: the
serving backend shares them.
"""
