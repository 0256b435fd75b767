"""Lowering: the optimised IR to a ViyaModel (entry point: driver.lower).

registry.py   LOWERINGS, keyed by (IR op, what it reads)
context.py    LoweringContext, the state and helpers the handlers share
driver.py     lower(): the graph input, then each node through its handler
inputs.py     the input layer (image, vector, 1-D map, sequence)
conv_pool.py  Conv, MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool
dense.py      Gemm, Softmax; the output layers of the graph outputs
merge.py      BatchNormalization, Sum, Concat
shape.py      Reshape, Flatten, Identity, Dropout
unit_axis.py  Squeeze, Unsqueeze; the refusal of an op no layer computes
recurrent.py  RNN, LSTM, GRU and what reads their sequences and states
"""
