"""Engine simulators: one queueing model, served in the real metric formats of vLLM, Triton, NIM and SGLang
releases and through the OpenAI-compatible API (`infersight simulate`)."""
