"""CDK constructs of the Batchline stack, one module per concern."""
