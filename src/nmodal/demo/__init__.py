"""The demo: a generated multilingual emoji corpus and the end-to-end ``nmodal demo`` run."""

from nmodal.demo.corpus import CorpusInfo, PostSpec, generate_corpus, plan_corpus

__all__ = ["CorpusInfo", "PostSpec", "generate_corpus", "plan_corpus"]
