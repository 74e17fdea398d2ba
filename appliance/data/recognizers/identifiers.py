"""Organisation identifiers: employee numbers and case or docket numbers; an ID-like token the text calls a
national, identity or licence number."""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

from appliance.data.recognizers._shared import CONTEXT_ONLY


class NationalIdInContextRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="NATIONAL_ID", name="NationalIdInContextRecognizer",
                         patterns=[Pattern("id-like token", r"\b[A-Z]{1,2}\d{6,9}\b", CONTEXT_ONLY)],
                         context=["national", "id", "identity", "license", "licence", "personalausweis", "ausweis",
                                  "identidade", "rg", "carte", "identité"])


class EmployeeIdRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="EMPLOYEE_ID", name="EmployeeIdRecognizer",
                         patterns=[Pattern("emp prefix", r"\bEMP[-#]?\d{4,8}\b", 0.7),
                                   Pattern("number in context", r"\b[A-Z]?\d{5,8}\b", CONTEXT_ONLY)],
                         context=["employee", "staff", "badge", "personnel", "payroll", "personalnummer",
                                  "matrícula", "matricula", "funcionário"])


class CaseNumberRecognizer(PatternRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entity="CASE_NUMBER", name="CaseNumberRecognizer",
                         patterns=[Pattern("case prefix", r"\bCASE[-#]?\d{2,4}[-/]?\d{2,8}\b", 0.7),
                                   Pattern("docket", r"\b\d{1,2}:\d{2}-(?:cv|cr|mj|bk)-\d{3,6}\b", 0.7)],
                         context=["case", "docket", "claim", "file"])


class DriverLicenseInContextRecognizer(PatternRecognizer):
    """A US driver's license number (most states: a letter and up to 13 digits, or 7-9 digits) the text calls one;
    Presidio's own licence recognizer scores bare digits too low to pass the threshold with its context."""

    def __init__(self) -> None:
        super().__init__(supported_entity="US_DRIVER_LICENSE", name="DriverLicenseInContextRecognizer",
                         patterns=[Pattern("licence-like token",
                                           r"\b(?:[A-Z]\d{4,13}|\d{7,9}|[A-Z]\d{3}-\d{4}-\d{4})\b", CONTEXT_ONLY)],
                         context=["driver", "drivers", "driving", "dl", "licence", "license"])
