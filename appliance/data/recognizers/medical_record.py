"""Medical record numbers (a HIPAA identifier): an "MRN" prefix alone, or a number the text calls a medical
record, chart or patient number."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CONTEXT_ONLY


class MedicalRecordNumberRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="MEDICAL_RECORD_NUMBER", name="MedicalRecordNumberRecognizer",
                         context=["mrn", "medical", "record", "chart", "patient", "hospital", "prontuário",
                                  "prontuario", "historia", "clínica", "patientennummer", "krankenakte", "dossier"],
                         patterns=[
            Pattern("mrn prefix", r"\bMRN[-:#\s]*(?=[A-Z0-9-]*\d)[A-Z0-9-]{5,12}\b", 0.7),
            Pattern("number in context", r"\b(?=[A-Z0-9-]*\d{5})[A-Z]{0,3}-?\d{5,10}\b", CONTEXT_ONLY)])
