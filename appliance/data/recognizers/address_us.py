"""US street addresses: number, street name, suffix, unit, city, state and ZIP; PO boxes; military post."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|"
          r"Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Trl)")
CONTEXT = ["address", "live", "lives", "street", "mail", "ship", "residence", "deliver", "send", "moved"]


class UsStreetAddressRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="STREET_ADDRESS", name="UsStreetAddressRecognizer", context=CONTEXT,
                         patterns=[
            Pattern("number street suffix",
                    rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+)?(?:[A-Za-z0-9][A-Za-z0-9'.-]*\s+){{1,4}}{SUFFIX}\b\.?"
                    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|#)\.?\s*[A-Za-z0-9-]+)?"
                    r"(?:,\s*[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+)*,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?)?", 0.7),
            Pattern("po box", r"\bP\.?\s?O\.?\s+Box\s+\d{1,6}\b", 0.7),
            # Military and diplomatic post: "PSC 2543, Box 1074 / APO AE 92684", "USNS Nagel / FPO AP 73177".
            Pattern("military post", r"\b(?:(?:PSC|CMR|Unit)\s+\d{3,5},?\s+Box\s+\d{1,5}|(?:USNS|USNV|USS|USCGC)\s+"
                    r"[A-Z][^\W\d_]+)\s*\n?\s*(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}\b", 0.7),
            Pattern("military post code", r"\b(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}\b", 0.2)])
