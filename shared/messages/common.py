from enum import StrEnum


class Language(StrEnum):
    """The language to write to this person in. Open: a later producer may add languages; write in Nynorsk (nn)
    when you meet one you do not know."""

    nn = "nn"
    nb = "nb"
    en = "en"
