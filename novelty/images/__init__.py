"""Images in: find and decode image files safely, the embedded sets, TFRecord shards, the tf.data input stream."""
