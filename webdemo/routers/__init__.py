"""One router per resource: samples, training, summary, images, query."""
