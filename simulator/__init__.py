"""Engine simulators serving real metric formats and the OpenAI API. Not built yet (see the open simulator issue)."""
