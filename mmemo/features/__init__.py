"""The frozen-feature cache: encode each utterance once, read memory-mapped features after."""
