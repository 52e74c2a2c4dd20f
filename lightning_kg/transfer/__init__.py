"""Cross-lingual transfer: fine-tune on one language, test zero-shot on the others (mLUKE's heads)."""
