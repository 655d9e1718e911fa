from rmtl_tf.layers.adapter_conv2d import AdapterConv2D
from rmtl_tf.layers.atrous_conv2d import AtrousConv2D
from rmtl_tf.layers.bank_depthwise_conv2d import BankDepthwiseConv2D
from rmtl_tf.layers.fused_batch_norm import FusedBatchNormalization
from rmtl_tf.layers.reparam_conv2d import ReparamConv2D
from rmtl_tf.layers.resize_like import ResizeLike
