#!/usr/bin/env python3
"""A pjsua2 user agent for tests/e2e_pjsua.rs: a real SIP/RTP stack (PJSIP),
headless (null sound device), that plays a tone into its call and records
what it hears.

  ua.py callee --sip-port P --rtp-port R --tone 600 --ring-ms 1500 --out DIR
      waits for one INVITE, answers 180 at once and 200 after ring-ms,
      plays a 600 Hz tone, records what it hears, hangs up when the caller
      does (or after --max-secs).
  ua.py caller --sip-port P --rtp-port R --tone 1000 --talk-ms 3000
               --to sip:12345@127.0.0.1:5060 --out DIR
      calls --to, plays a 1000 Hz tone once the call is confirmed, records
      everything it hears (early media included), hangs up after talk-ms.

Each writes DIR/<role>.wav (8 kHz mono 16-bit) and prints one JSON line at
the end: {"role", "states", "confirmed", "codec", "last_status",
"record_path", "record_started_ms", "confirmed_ms", "error"}.
Times are milliseconds since the process started.
"""
import argparse
import gc
import json
import math
import os
import struct
import sys
import time
import wave

import pjsua2 as pj

T0 = time.monotonic()


def ms():
    return int((time.monotonic() - T0) * 1000)


def write_tone(path, freq, secs, rate=8000):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for n in range(int(secs * rate)):
            v = int(8000 * math.sin(2 * math.pi * freq * n / rate))
            frames += struct.pack("<h", v)
        w.writeframes(bytes(frames))


class State:
    def __init__(self, role):
        self.role = role
        self.states = []
        self.confirmed_ms = None
        self.disconnected = False
        self.codec = None
        self.last_status = None
        self.record_started_ms = None
        self.error = None


class Call(pj.Call):
    def __init__(self, acc, st, args, call_id=pj.PJSUA_INVALID_ID):
        pj.Call.__init__(self, acc, call_id)
        self.st = st
        self.args = args
        self.recorder = None
        self.player = None

    def onCallState(self, prm):
        ci = self.getInfo()
        self.st.states.append(ci.stateText)
        self.st.last_status = ci.lastStatusCode
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.st.confirmed_ms is None:
            self.st.confirmed_ms = ms()
            # The caller talks once answered (its media may have been up
            # since the early media of the 180).
            if self.player is None:
                for i, mi in enumerate(ci.media):
                    if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                        self.start_player(self.getAudioMedia(i))
                        break
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.st.disconnected = True

    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if mi.status not in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                continue
            am = self.getAudioMedia(i)
            try:
                self.st.codec = self.getStreamInfo(i).codecName
            except pj.Error:
                pass
            if self.recorder is None:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(os.path.join(self.args.out, self.st.role + ".wav"))
                am.startTransmit(self.recorder)
                self.st.record_started_ms = ms()
            if self.player is None and (self.st.role == "callee" or ci.state == pj.PJSIP_INV_STATE_CONFIRMED):
                self.start_player(am)

    def start_player(self, am):
        self.player = pj.AudioMediaPlayer()
        self.player.createPlayer(self.args.tone_file, pj.PJMEDIA_FILE_NO_LOOP)
        self.player.startTransmit(am)


class Account(pj.Account):
    def __init__(self, st, args):
        pj.Account.__init__(self)
        self.st = st
        self.args = args
        self.call = None
        self.ring_until = None

    def onIncomingCall(self, prm):
        c = Call(self, self.st, self.args, prm.callId)
        op = pj.CallOpParam()
        op.statusCode = 180
        c.answer(op)
        self.call = c
        self.ring_until = ms() + self.args.ring_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["caller", "callee"])
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--rtp-port", type=int, required=True)
    ap.add_argument("--tone", type=float, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--to")
    ap.add_argument("--ring-ms", type=int, default=1500)
    ap.add_argument("--talk-ms", type=int, default=3000)
    ap.add_argument("--max-secs", type=float, default=20.0)
    args = ap.parse_args()
    args.tone_file = os.path.join(args.out, args.role + "-tone.wav")
    write_tone(args.tone_file, args.tone, (args.talk_ms + args.ring_ms) / 1000 + 2)

    st = State(args.role)
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.userAgent = "pjsua2-test-" + args.role
    cfg.logConfig.level = 3
    cfg.logConfig.consoleLevel = 3
    cfg.logConfig.filename = os.path.join(args.out, args.role + "-pjsip.log")
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = args.sip_port
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.audDevManager().setNullDev()
    ep.libStart()

    acfg = pj.AccountConfig()
    acfg.idUri = "sip:%s@127.0.0.1:%d" % ("13800138000" if args.role == "caller" else "agent", args.sip_port)
    acfg.mediaConfig.transportConfig.port = args.rtp_port
    acfg.mediaConfig.transportConfig.portRange = 10
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acc = Account(st, args)
    acc.create(acfg)

    print(json.dumps({"ready": True}), flush=True)
    deadline = ms() + int(args.max_secs * 1000)
    hangup_at = None
    try:
        if args.role == "caller":
            acc.call = Call(acc, st, args)
            acc.call.makeCall(args.to, pj.CallOpParam(True))
        while ms() < deadline:
            ep.libHandleEvents(10)
            call = acc.call
            if call is None:
                continue
            if args.role == "callee" and acc.ring_until is not None and ms() >= acc.ring_until:
                acc.ring_until = None
                op = pj.CallOpParam()
                op.statusCode = 200
                call.answer(op)
            if args.role == "caller" and st.confirmed_ms is not None and hangup_at is None:
                hangup_at = st.confirmed_ms + args.talk_ms
            if hangup_at is not None and ms() >= hangup_at and not st.disconnected:
                hangup_at = deadline + 1
                call.hangup(pj.CallOpParam())
            if st.disconnected:
                # Let the BYE transaction finish.
                end = ms() + 300
                while ms() < end:
                    ep.libHandleEvents(10)
                break
    except pj.Error as e:
        st.error = str(e.info())
    # Close the recorder (its WAV header is written then) and drop every
    # object bound to the library before it goes.
    if acc.call is not None:
        acc.call.recorder = None
        acc.call.player = None
    acc.call = None
    call = None
    gc.collect()
    out = {
        "role": st.role,
        "states": st.states,
        "confirmed": st.confirmed_ms is not None,
        "confirmed_ms": st.confirmed_ms,
        "disconnected": st.disconnected,
        "codec": st.codec,
        "last_status": st.last_status,
        "record_path": os.path.join(args.out, st.role + ".wav"),
        "record_started_ms": st.record_started_ms,
        "error": st.error,
    }
    print(json.dumps(out), flush=True)
    acc.shutdown()
    acc = None
    gc.collect()
    try:
        ep.libDestroy()
    except pj.Error:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
