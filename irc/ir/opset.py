"""The ONNX opset and IR version of every model irc builds itself (one home for the numbers).

The Keras routes (tf2onnx and the direct writer), the Caffe converter and the IR exporter all
write this opset. Imported ONNX models keep their own; irc/frontends/onnx/opset.py says what
older ones are upgraded to.
"""
OPSET = 17
# The ModelProto ir_version of the models irc writes: 8, the IR of ONNX 1.12, which introduced
# opset 17.
IR_VERSION = 8
