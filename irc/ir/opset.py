"""The ONNX opset of every model irc builds itself (one home for the number).

The Keras routes (tf2onnx and the direct writer), the Caffe converter and the IR exporter all
write this opset. Imported ONNX models keep their own; irc/frontends/onnx/opset.py says what
older ones are upgraded to.
"""
OPSET = 17
