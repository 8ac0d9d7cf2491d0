from enum import StrEnum


class Language(StrEnum):
    nn = "nn"
    nb = "nb"
    en = "en"
