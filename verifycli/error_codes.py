"""What a ChannelErrorCode means: Plivo's published SMS error codes and voice hangup causes.

Plivo's Verify guide says only "ChannelErrorCode: Error code for the channel". That an SMS
attempt reports Plivo's SMS error codes and a voice attempt Plivo's hangup causes is our
reading, not a documented promise (docs/fidelity.md). Each table holds only entries read on
the page named above it; a code that is not there is shown as "unknown code", not guessed.
"""

from __future__ import annotations

UNKNOWN = "unknown code"

# https://www.plivo.com/docs/messaging/troubleshooting/error-codes/ ("Error Codes": "Plivo SMS
# error codes ... also included in status update events"). Only the entries we read are
# here; the page lists more.
SMS_ERRORS: dict[str, str] = {
    "10": "Invalid Message: rejected by a downstream carrier as an invalid message",
    "20": "Network Error: the carrier had network issues; temporary, retry later",
    "30": "Spam Detected: blocked by a carrier's spam filter",
    "40": "Invalid Source Number: the source number is malformed, not SMS-enabled or not yours",
    "50": "Invalid Destination Number",
}

# https://www.plivo.com/docs/voice/troubleshooting/hangup-causes/ ("List of hangup causes").
# Only the entries we read are here; the page lists more (the 3000s among them).
VOICE_HANGUP_CAUSES: dict[str, str] = {
    "0": "Unknown: the reason for hangup could not be determined",
    "1000": "Canceled: the call was canceled before it was answered",
    "1010": "Canceled (Out Of Credits): the account ran out of credits",
    "1020": "Canceled (Simultaneous dial limit reached)",
    "2000": "Invalid Destination Address: check the number is valid and in E.164 format",
    "2010": "Destination Out Of Service: the number is unavailable or out of service",
    "2020": "Endpoint Not Registered: the SIP endpoint could not be reached",
    "2030": "Destination Country Barred: check Voice > Geo Permissions on the Plivo console",
    "2040": "Destination Number Barred: calls to premium rate numbers are disabled",
    "2060": "Loop Detected",
    "4000": "Normal Hangup: the call ended normally",
    "4010": "End Of XML Instructions",
    "4020": "Multiparty Call Ended",
    "4030": "Kicked Out Of Multiparty Call",
}

# Codes the simulator sends that Plivo's tables, as far as we read them, do not confirm.
# A placeholder is labelled as one wherever its meaning is shown.
_NOT_CONFIRMED = "placeholder used by verifycli's simulator; not confirmed in Plivo's table"
PLACEHOLDERS: dict[tuple[str, str], str] = {
    ("voice", "3000"): f"busy ({_NOT_CONFIRMED})",
    ("voice", "3020"): f"no answer ({_NOT_CONFIRMED})",
    ("voice", "3030"): f"ring timeout ({_NOT_CONFIRMED})",
}

# The codes the simulator and `trigger` send with a failed or undelivered attempt.
SIMULATED: dict[tuple[str, str], str] = {
    ("sms", "undelivered"): "20",  # Network Error: a carrier problem after the message was sent
    ("sms", "failed"): "50",  # Invalid Destination Number: refused before sending
    ("voice", "failed"): "2010",  # Destination Out Of Service
    ("voice", "no-answer"): "3020",  # placeholder, see PLACEHOLDERS
    ("voice", "busy"): "3000",  # placeholder
    ("voice", "cancel"): "1000",  # Canceled
    ("voice", "timeout"): "3030",  # placeholder
}


def describe(channel: str | None, code: str | None) -> str | None:
    """The meaning of ChannelErrorCode `code` on `channel`: None when blank, UNKNOWN when the
    tables do not have it."""
    if code is None or not code.strip():
        return None
    code = code.strip()
    tables = {"sms": (SMS_ERRORS,), "voice": (VOICE_HANGUP_CAUSES,)}.get(
        (channel or "").lower(), (SMS_ERRORS, VOICE_HANGUP_CAUSES)
    )
    for table in tables:
        if code in table:
            return table[code]
    for (on, placeholder), text in PLACEHOLDERS.items():
        if placeholder == code and (channel or on).lower() == on:
            return text
    return UNKNOWN
