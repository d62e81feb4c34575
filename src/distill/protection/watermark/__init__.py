"""Text watermarking (Kirchenbauer et al. 2023): keys, green lists, the logits processor and detection."""

from distill.keys.watermark import WatermarkKey, load_key, new_key, save_key
from distill.protection.watermark.detect import (
           Detection,
           UnitCounter,
           detect_accounts,
           detect_ids,
           detect_text,
)
from distill.protection.watermark.processor import WatermarkLogitsProcessor
from distill.protection.watermark.stats import binom_log_sf, min_tokens_needed, p_value, z_score

__all__ = ["Detection", "UnitCounter", "WatermarkKey", "WatermarkLogitsProcessor", "binom_log_sf", "detect_accounts",
           "detect_ids", "detect_text", "load_key", "min_tokens_needed", "new_key", "p_value", "save_key",
           "z_score"]
