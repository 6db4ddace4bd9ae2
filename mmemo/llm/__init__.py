"""Large language models for emotion: label scoring by constrained log-likelihood (``scoring.py``), prompts
and few-shot examples (``prompts.py``). Causal LMs as text encoders live with the encoders
(:mod:`mmemo.encoders.llm`)."""
