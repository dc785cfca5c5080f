"""Languages the realtime models speak and understand (both providers' documented sets)."""

SUPPORTED_LANGUAGES = [
    "af", "ar", "bg", "bn", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et", "eu", "fa",
    "fi", "fr", "ga", "gl", "gu", "he", "hi", "hr", "hu", "hy", "id", "is", "it", "ja", "ka",
    "kk", "kn", "ko", "lb", "lt", "lv", "mk", "ml", "mn", "mr", "ms", "nb", "ne", "nl", "pa",
    "pl", "pt", "ro", "ru", "sk", "sl", "sq", "sr", "sv", "sw", "ta", "te", "th", "tl", "tr",
    "uk", "ur", "vi", "zh",
]  # fmt: skip
