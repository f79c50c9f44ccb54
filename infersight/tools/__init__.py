"""Demo, validation and benchmark tools: they import the product, never the other way round."""
