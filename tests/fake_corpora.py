"""Tiny fake corpora in their ORIGINAL on-disk layouts, built for tests (never committed data).

Each ``build_*`` writes a tree that imitates the real release (file names,
label-file line formats, CSV columns, transcript formats and encodings) with a
handful of tiny generated WAVs (and, for MELD, real MP4s made with ffmpeg),
and returns the *truth* it encoded: ``key -> expected fields``. Tests compare
the prepared manifests with that truth. :func:`convert_tree` turns a tree into
the converted copy users often keep (FLAC under the same names, maybe with
both files for some names).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile

SR = 16_000


def write_wav(path: Path, seconds: float = 0.1, sr: int = SR, freq: float = 220.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * sr))) / sr
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- IEMOCAP

IEMOCAP_TEXTS = ["Excuse me.", "Do you have your forms?", "Yeah.", "Well: let me see them.",
                 "[LAUGHTER] Is there a problem?", "Who told you to get in this line?", "You did.",
                 "I'm sorry, ma'am.", "Okay.", "No, I--I don't think so.", "Fine!"]

IEMOCAP_DIALOGS = {
    # dialog suffix -> turns (last id part, label); scripted dialogs may start with the male actor
    "F_impro01": [("F000", "neu"), ("M000", "ang"), ("F001", "exc"), ("M001", "fru"), ("F002", "hap"),
                  ("M002", "sad"), ("F003", "xxx")],
    "M_script01_1": [("F000", "sad"), ("M000", "exc"), ("M001", "neu"), ("F001", "sur")],
}
#: A labelled utterance whose WAV is absent (reported, left out).
IEMOCAP_MISSING_WAV = "Ses02M_script01_1_M001"


def build_iemocap(base: Path) -> tuple[Path, dict[str, dict]]:
    """``IEMOCAP_full_release/Session1..5`` with 11 labelled turns per session (7 improvised)."""
    root = base / "IEMOCAP_full_release"
    truth: dict[str, dict] = {}
    for n in range(1, 6):
        session = root / f"Session{n}"
        evaluation = session / "dialog" / "EmoEvaluation"
        transcripts = session / "dialog" / "transcriptions"
        (evaluation / "Categorical").mkdir(parents=True)
        transcripts.mkdir(parents=True)
        for suffix, turns in IEMOCAP_DIALOGS.items():
            dialog = f"Ses0{n}{suffix}"
            eval_lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            text_lines = []
            for i, (tail, emo) in enumerate(turns):
                utt = f"{dialog}_{tail}"
                start, end = 6.2901 + 3 * i, 8.2357 + 3 * i
                vad = [1.5 + 0.5 * (i % 4), 2.0 + 0.5 * (n % 3), 3.0]
                eval_lines += [
                    f"[{start:.4f} - {end:.4f}]\t{utt}\t{emo}\t[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]",
                    "C-E2:\tNeutral;\t()", "C-E3:\tFrustration; Anger;\t()", "C-F1:\tNeutral;\t(curious)",
                    "A-E3:\tval 3; act 2; dom  2;\t()", "A-F1:\tval 3; act 2; dom  1;\t()", "",
                ]
                text = IEMOCAP_TEXTS[(i + n) % len(IEMOCAP_TEXTS)]
                text_lines.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
                if i == 1:  # lines that are not labelled utterances
                    text_lines.append(f"{dialog}_MXX1 [{end:08.4f}-{end + 1:08.4f}]: Mm-hmm.")
                    text_lines.append("M: [BREATHING]")
                    text_lines.append("")
                if utt != IEMOCAP_MISSING_WAV:
                    write_wav(session / "sentences" / "wav" / dialog / f"{utt}.wav", 0.1 + 0.01 * i)
                truth[utt] = {"emo": emo, "text": text, "speaker": f"Ses0{n}{tail[0]}", "gender": tail[0],
                              "session": f"Session{n}", "improvised": "_impro" in dialog, "vad": vad,
                              "length": round(0.1 + 0.01 * i, 6)}
            (evaluation / f"{dialog}.txt").write_text("\n".join(eval_lines) + "\n", encoding="ascii")
            (transcripts / f"{dialog}.txt").write_text("\n".join(text_lines) + "\n", encoding="ascii")
            # what else the release holds next to the summaries: per-evaluator files and macOS forks
            (evaluation / "Categorical" / f"{dialog}_e2_cat.txt").write_text(
                f"{dialog}_F000 :Neutral; ()\n", encoding="ascii")
            (evaluation / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    return root, truth


# --------------------------------------------------------------------------- MELD

MELD_COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
                "Season", "Episode", "StartTime", "EndTime"]
# (utterance, speaker, emotion, sentiment, dialogue, utterance id); text uses real Unicode punctuation
MELD_ROWS = {
    "train": [
        ("also I was the point person on my company’s transition from the KL-5 to GR-6 system.",
         "Chandler", "neutral", "neutral", 0, 0),
        ("You must’ve had your hands full.", "The Interviewer", "neutral", "neutral", 0, 1),
        ("Oh my God, he’s lost it… He’s totally lost it.", "Phoebe", "sadness", "negative", 1, 0),
        ("What?", "Monica", "surprise", "negative", 1, 1),
        ("Yay—finally!", "Joey", "joy", "positive", 2, 0),
    ],
    "dev": [
        ("Oh my God, that’s so sweet…", "Rachel", "joy", "positive", 0, 0),
        ("Get out!", "Ross", "anger", "negative", 0, 1),
        ("Eww—that’s gross.", "Monica", "disgust", "negative", 1, 0),
    ],
    "test": [
        ("Why do all you’re coffee mugs have numbers on the bottom?", "Mark", "surprise", "positive", 0, 0),
        ("Oh. That’s so Monica can keep track.", "Rachel", "neutral", "neutral", 0, 1),
        ("I’m scared, okay?", "Chandler", "fear", "negative", 1, 0),
    ],
}
MELD_MISSING = ("train", 1, 1)   # a CSV row whose clip is absent (MELD has a few)
MELD_CORRUPT = ("dev", 0, 1)     # a clip ffmpeg cannot read
_MELD_FOLDERS = {"train": "train/train_splits", "dev": "dev_splits_complete",
                 "test": "output_repeated_splits_test"}
_MELD_CSVS = {"train": "train/train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
_MP4_CACHE: dict[str, Path] = {}


def _mp4(kind: str) -> Path:
    """A tiny real MP4 (AAC, 48 kHz) made once per process with the ffmpeg CLI."""
    if kind not in _MP4_CACHE:
        folder = Path(tempfile.mkdtemp(prefix="fake_meld_"))
        target = folder / f"{kind}.mp4"
        sine = ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.3:sample_rate=48000"]
        if kind == "stereo":
            args = [*sine, "-ac", "2", "-c:a", "aac", "-b:a", "64k"]
        else:  # 6-channel audio with a video stream, like many MELD test clips
            args = [*sine, "-f", "lavfi", "-i", "color=c=black:s=32x32:r=5:d=0.3", "-ac", "6", "-c:a", "aac",
                    "-c:v", "mpeg4", "-shortest"]
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(target)], check=True)
        _MP4_CACHE[kind] = target
    return _MP4_CACHE[kind]


def meld_csv_text(split: str, rows=None) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(MELD_COLUMNS)
    for number, (text, speaker, emo, sentiment, dia, utt) in enumerate(rows or MELD_ROWS[split], start=1):
        minute = dia if isinstance(dia, int) else 0   # malformed rows in tests may carry a non-integer id
        start = f"00:{16 + minute:02d}:{16 + utt:02d},059"
        writer.writerow([number, text, speaker, emo, sentiment, dia, utt, 8, 21 + minute, start,
                         start.replace(",059", ",731")])
    return buffer.getvalue()


def meld_encode(split: str, text: str) -> bytes:
    """The three ways MELD's CSVs are (mis)encoded: Windows-1252, C1 mojibake, UTF-8-as-1252 mojibake."""
    if split == "train":
        return text.encode("cp1252")
    if split == "dev":
        return text.encode("cp1252").decode("latin-1").encode("utf-8")
    return text.encode("utf-8").decode("cp1252").encode("utf-8")


def build_meld(base: Path) -> tuple[Path, dict[str, dict]]:
    root = base / "MELD.Raw"
    truth: dict[str, dict] = {}
    for split, rows in MELD_ROWS.items():
        csv_path = root / _MELD_CSVS[split]
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        csv_path.write_bytes(meld_encode(split, meld_csv_text(split)))
        folder = root / _MELD_FOLDERS[split]
        folder.mkdir(parents=True, exist_ok=True)
        for i, (text, speaker, emo, sentiment, dia, utt) in enumerate(rows):
            clip = folder / f"dia{dia}_utt{utt}.mp4"
            key = f"dia{dia}_utt{utt}-{split}"
            truth[key] = {"emo": emo, "sentiment": sentiment, "text": text, "speaker": speaker, "split": split,
                          "line": i + 2, "csv": csv_path}
            if (split, dia, utt) == MELD_MISSING:
                continue
            if (split, dia, utt) == MELD_CORRUPT:
                clip.write_bytes(b"this is not an mp4 file\n" * 4)
                continue
            shutil.copyfile(_mp4("stereo" if i % 2 == 0 else "av6"), clip)
    # the test archive also ships clips that no CSV row names
    shutil.copyfile(_mp4("stereo"), root / _MELD_FOLDERS["test"] / "final_videos_testdia0_utt0.mp4")
    return root, truth


# --------------------------------------------------------------------------- RAVDESS

RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
                    "07": "disgust", "08": "surprised"}
RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}


def build_ravdess(base: Path, actors: int = 24) -> tuple[Path, dict[str, dict]]:
    """``Actor_01..Actor_NN`` with one speech file per emotion, plus song and hidden files to ignore."""
    root = base / "ravdess"
    truth: dict[str, dict] = {}
    for a in range(1, actors + 1):
        actor = f"{a:02d}"
        folder = root / f"Actor_{actor}"
        for e, emotion in RAVDESS_EMOTIONS.items():
            intensity = "01" if e == "01" else ("02" if a % 2 else "01")
            statement = "01" if int(e) % 2 else "02"
            name = f"03-01-{e}-{intensity}-{statement}-01-{actor}"
            write_wav(folder / f"{name}.wav", 0.05 + 0.005 * int(e), sr=48_000, freq=200.0 + 10 * a)
            truth[name] = {"emo": emotion, "text": RAVDESS_STATEMENTS[statement], "speaker": actor,
                           "gender": "M" if a % 2 else "F"}
        write_wav(folder / f"03-02-03-01-01-01-{actor}.wav", 0.05, sr=48_000)  # song: vocal channel 02
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root, truth


# --------------------------------------------------------------------------- CREMA-D

CREMAD_SENTENCES = {"IEO": "It's eleven o'clock", "DFA": "Don't forget a jacket",
                    "TIE": "That is exactly what happened"}
CREMAD_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CREMAD_ACTORS = {"1001": "Male", "1002": "Female", "1003": "Female", "1004": "Female", "1005": "Male",
                 "1006": "Male", "1007": "Male", "1008": "Female"}
#: Missing from the release, which makes the actors' per-emotion counts unequal (as in the real corpus).
CREMAD_ABSENT = "1003_TIE_SAD_XX"


def build_cremad(base: Path, *, balanced: bool = False) -> tuple[Path, dict[str, dict]]:
    root = base / "CREMA-D"
    audio = root / "AudioWAV"
    truth: dict[str, dict] = {}
    levels = ("LO", "MD", "HI")
    for a, (actor, sex) in enumerate(CREMAD_ACTORS.items()):
        for e, emotion in enumerate(CREMAD_EMOTIONS):
            for sentence in CREMAD_SENTENCES:
                level = "XX" if sentence != "IEO" or emotion == "NEU" else levels[(a + e) % 3]
                name = f"{actor}_{sentence}_{emotion}_{level}"
                if name == CREMAD_ABSENT and not balanced:
                    continue
                write_wav(audio / f"{name}.wav", 0.05 + 0.01 * e)
                truth[name] = {"emo": emotion, "text": CREMAD_SENTENCES[sentence], "speaker": actor,
                               "gender": sex[0]}
    rows = ["ActorID,Age,Sex,Race,Ethnicity"] + [f"{actor},{30 + i},{sex},Caucasian,Not Hispanic"
                                                 for i, (actor, sex) in enumerate(CREMAD_ACTORS.items())]
    (root / "VideoDemographics.csv").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    (root / "finishedResponses.csv").write_text("localid,sessionNums\n", encoding="utf-8")
    return root, truth


# --------------------------------------------------------------------------- EmoDB

EMODB_EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
                  "N": "neutral"}
EMODB_SENTENCES = {"a01": "Der Lappen liegt auf dem Eisschrank.",
                   "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
                   "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
                   "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen."}
EMODB_SPEAKERS = {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "12": "M", "13": "F", "14": "F",
                  "15": "M", "16": "F"}


def build_emodb(base: Path) -> tuple[Path, dict[str, dict]]:
    """``wav/`` with each speaker's 7 emotions (an extra anger take for some: unbalanced, as the real one)."""
    root = base / "emodb"
    truth: dict[str, dict] = {}
    codes = list(EMODB_SENTENCES)
    for s, (speaker, gender) in enumerate(EMODB_SPEAKERS.items()):
        takes = [(letter, codes[(s + i) % len(codes)], "a") for i, letter in enumerate(EMODB_EMOTIONS)]
        if s % 3 == 0:
            takes.append(("W", codes[(s + 1) % len(codes)], "b"))
        for letter, code, version in takes:
            name = f"{speaker}{code}{letter}{version}"
            write_wav(root / "wav" / f"{name}.wav", 0.05 + 0.01 * s)
            truth[name] = {"emo": EMODB_EMOTIONS[letter], "text": EMODB_SENTENCES[code], "speaker": speaker,
                           "gender": gender}
    for folder, name, content in (("lab", "03a01Fa.lab", "#\n0.0 12 P\n"), ("silb", "03a01Fa.silb", "0 d\n")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text(content, encoding="latin-1")
    (root / "erkennung.txt").write_text("Datei  Erkennungsrate\n", encoding="latin-1")
    return root, truth


# --------------------------------------------------------------------------- ESD

ESD_EMOTIONS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")   # id blocks of 350, in this order
ESD_CHINESE = {"Neutral": "中立", "Angry": "生气", "Happy": "快乐", "Sad": "伤心", "Surprise": "惊喜"}
ESD_ENGLISH_TEXTS = ["Author of the danger trail, Philip Steels, etc.", "Tom was a very good boy.",
                     "The nine the eggs, I keep."]
ESD_CHINESE_TEXTS = ["打远一看，它们的确很是美丽，", "我们都是好朋友。", "今天天气真好！"]
ESD_SPLITS = ("evaluation", "test", "train")   # subfolder of the n-th take in the split layout


def build_esd(base: Path, *, layout: str = "flat", speakers: range = range(1, 21)) -> tuple[Path, dict[str, dict]]:
    """``0001..0020`` with 3 takes per emotion; Mandarin transcripts in GB18030, UTF-8 with BOM, or UTF-8."""
    root = base / "Emotional Speech Dataset (ESD)"
    truth: dict[str, dict] = {}
    for number in speakers:
        speaker = f"{number:04d}"
        zh = number <= 10
        lines = []
        for block, emotion in enumerate(ESD_EMOTIONS):
            for take in range(3):
                index = block * 350 + take + 1
                key = f"{speaker}_{index:06d}"
                text = (ESD_CHINESE_TEXTS if zh else ESD_ENGLISH_TEXTS)[take]
                label = ESD_CHINESE[emotion] if zh else emotion
                lines.append(f"{key}\t{text}\t{label}")
                folder = root / speaker / emotion
                split = None
                if layout == "split":
                    split = ESD_SPLITS[take]
                    folder = folder / split
                write_wav(folder / f"{key}.wav", 0.05 + 0.01 * take)
                truth[key] = {"emo": emotion, "text": text, "speaker": speaker, "lang": "zh" if zh else "en",
                              "split": split}
        body = "\n".join(lines) + "\n"
        path = root / speaker / f"{speaker}.txt"
        if number == 1:
            path.write_bytes(body.encode("gb18030"))
        elif number == 2:
            path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
        elif number == 11:
            path.write_bytes(body.replace("\n", "\r\n").encode("utf-8"))
        else:
            path.write_bytes(body.encode("utf-8"))
    return root, truth


# --------------------------------------------------------------------------- converted copies


def convert_tree(root: Path, suffix: str = ".flac", *, also: Iterable[str] = (), stereo: Iterable[str] = (),
                 source: str = ".wav") -> list[Path]:
    """Re-encode every ``source`` file under ``root`` as ``suffix`` under the same name, as users convert corpora.

    The original is removed, except for stems in ``also``: those keep it and get a converted copy of twice
    the duration next to it (so a test can tell which of the two was read). Stems in ``stereo`` become
    two-channel (RAVDESS's release has a few stereo files). WAVs are converted with soundfile, anything else
    (MELD's MP4) with ffmpeg; a file that cannot be decoded is copied as is (still broken). Hidden files
    (``._x.wav`` forks) are left alone. Returns the files written.
    """
    also, stereo = set(also), set(stereo)
    written = []
    for path in sorted(p for p in root.rglob(f"*{source}") if p.is_file() and not p.name.startswith(".")):
        target = path.with_suffix(suffix)
        if source == ".wav":
            data, rate = soundfile.read(str(path), dtype="float32")
        else:
            result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1",
                                     "-ar", str(SR), "-f", "f32le", "-"], capture_output=True, check=False)
            data, rate = np.frombuffer(result.stdout, dtype=np.float32), SR
            if result.returncode != 0 or not len(data):
                shutil.copyfile(path, target)
                path.unlink()
                written.append(target)
                continue
        if path.stem in also:
            data = np.concatenate([data, data])
        if path.stem in stereo:
            data = np.stack([data, 0.5 * data], axis=1)
        soundfile.write(str(target), data, rate, subtype="PCM_16")
        if path.stem not in also:
            path.unlink()
        written.append(target)
    return written


# --------------------------------------------------------------------------- an EmoBox split, audio elsewhere

EMOBOX_RAVDESS_LABELS = {"Angry": "Angry", "Surprised": "Surprise", "Sad": "Sad", "Disgust": "Disgust",
                         "Happy": "Happy", "Calm": "Calm", "Neutral": "Neutral", "Fearful": "Fear"}
EMOBOX_RAVDESS_PREFIX = "downloads/ravdess/audio/Audio_Speech_Actors_01-24"


def build_emobox_ravdess(base: Path, audio_base: Path, actors: int = 4) -> tuple[Path, Path, dict[str, dict]]:
    """An EmoBox ``data/ravdess/`` folder (real line format, leave-one-actor-out folds) for ``actors`` actors,
    and its audio as users keep it: ``audio_base/Audio_Speech_Actors_01-24/Actor_XX/<name>.flac`` (16 kHz,
    not under EmoBox's ``downloads/ravdess/audio/`` prefix). Returns (EmoBox folder, audio root, truth by key).
    """
    data = base / "ravdess"
    audio = audio_base / "Audio_Speech_Actors_01-24"
    truth: dict[str, dict] = {}
    rows: dict[str, list[dict]] = {}
    for a in range(1, actors + 1):
        actor = f"{a:02d}"
        for e, emotion in RAVDESS_EMOTIONS.items():
            name = f"03-01-{e}-01-{'01' if int(e) % 2 else '02'}-01-{actor}"
            seconds = 0.05 + 0.005 * int(e)
            write_wav(audio / f"Actor_{actor}" / f"{name}.flac", seconds, freq=200.0 + 10 * a)
            key = f"ravdess-{name}"
            emo = emotion.capitalize()
            row = {"key": key, "dataset": "ravdess", "wav": f"{EMOBOX_RAVDESS_PREFIX}/Actor_{actor}/{name}.wav",
                   "type": "raw", "sample_rate": 48000, "num_frame": float(round(seconds * 48000)),
                   "task": "category", "length": seconds, "emo": emo, "channel": 1}
            rows.setdefault(actor, []).append(row)
            truth[key] = {"emo": emo, "speaker": actor, "flac": f"Audio_Speech_Actors_01-24/Actor_{actor}/{name}.flac"}
    dump = lambda lines: "".join(json.dumps(r) + "\n" for r in lines)  # noqa: E731 - EmoBox's own format
    for k, test_actor in enumerate(sorted(rows), start=1):
        folder = data / f"fold_{k}"
        folder.mkdir(parents=True)
        train = [r for actor, lines in sorted(rows.items()) if actor != test_actor for r in lines]
        (folder / f"ravdess_train_fold_{k}.jsonl").write_text(dump(train), encoding="utf-8")
        (folder / f"ravdess_test_fold_{k}.jsonl").write_text(dump(rows[test_actor]), encoding="utf-8")
    everything = [r for _, lines in sorted(rows.items()) for r in lines]
    (data / "ravdess.jsonl").write_text(dump(everything), encoding="utf-8")
    (data / "label_map.json").write_text(json.dumps(EMOBOX_RAVDESS_LABELS, indent=4), encoding="utf-8")
    stm = [f"{r['key']} 1 {truth[r['key']]['speaker']} 0 {r['length']} <id={r['key']},lang=en,"
           f"spk={truth[r['key']]['speaker']},emotion={r['emo']}> {r['emo']}" for r in everything]
    (data / "data.seg.wrd.stm").write_text("\n".join(stm) + "\n", encoding="utf-8")
    (data / "corpus.cfg").write_text("[Corpus]\nname = ravdess\nraw = downloads/ravdess\n", encoding="utf-8")
    return data, audio_base, truth


# --------------------------------------------------------------------------- MSP-Podcast

MSP_CONSENSUS = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
#: (segment, class code, act, val, dom, speaker, gender, split); speaker 310 has no id ("Unknown").
MSP_ROWS = [
    ("MSP-PODCAST_0001_0001", "A", 6.2, 2.0, 5.8, "127", "Male", "Train"),
    ("MSP-PODCAST_0001_0002", "H", 5.0, 6.4, 4.4, "127", "Male", "Train"),
    ("MSP-PODCAST_0002_0001", "N", 3.8, 4.0, 4.0, "128", "Female", "Train"),
    ("MSP-PODCAST_0002_0002", "S", 2.2, 2.6, 3.0, "128", "Female", "Train"),
    ("MSP-PODCAST_0002_0003", "X", 4.0, 3.6, 4.2, "128", "Female", "Train"),   # no agreement: dims only
    ("MSP-PODCAST_0003_0001", "U", 5.4, 5.0, 4.6, "Unknown", "Unknown", "Train"),
    ("MSP-PODCAST_0004_0001", "N", 4.0, 4.2, 4.0, "200", "Female", "Development"),
    ("MSP-PODCAST_0004_0002", "C", 4.4, 2.8, 5.0, "200", "Female", "Development"),
    ("MSP-PODCAST_0005_0001", "A", 6.0, 1.8, 6.0, "301", "Male", "Test1"),
    ("MSP-PODCAST_0005_0002", "N", 3.6, 4.4, 3.8, "301", "Male", "Test1"),
    ("MSP-PODCAST_0005_0003", "F", 5.2, 2.4, 2.6, "302", "Female", "Test1"),
    ("MSP-PODCAST_0006_0001", "D", 4.8, 2.2, 4.4, "401", "Female", "Test2"),
    ("MSP-PODCAST_0006_0002", "H", 5.6, 6.2, 5.0, "401", "Female", "Test2"),
    ("MSP-PODCAST_0007_0001", "N", 4.0, 4.0, 4.0, "Unknown", "Unknown", "Test2"),
]
#: Per-annotator primary emotions (labels_detailed.csv), words as the release writes them.
MSP_VOTES = {"MSP-PODCAST_0001_0001": ["Angry", "Angry", "Contempt", "Other-Annoyed"],
             "MSP-PODCAST_0002_0003": ["Sad", "Neutral", "Happy"],
             "MSP-PODCAST_0005_0001": ["Angry", "Disgust"]}


def build_msp_podcast(base: Path, rows=None) -> tuple[Path, dict[str, dict]]:
    """A release folder: Labels/labels_consensus.csv + labels_detailed.csv, Audios/*.wav, Transcripts/*.txt."""
    root = base / "MSP-Podcast"
    rows = list(MSP_ROWS if rows is None else rows)
    lines = list(MSP_CONSENSUS)
    truth = {}
    for i, (name, code, act, val, dom, speaker, gender, split) in enumerate(rows):
        lines.append(f"{name}.wav,{code},{act},{val},{dom},{speaker},{gender},{split}")
        write_wav(root / "Audios" / f"{name}.wav", 0.05 + 0.01 * i, freq=180.0 + 15 * i)
        (root / "Transcripts").mkdir(parents=True, exist_ok=True)
        (root / "Transcripts" / f"{name}.txt").write_text(f"segment {i} words\n", encoding="utf-8")
        truth[name] = {"code": code, "arousal": act, "valence": val, "dominance": dom, "split": split,
                       "speaker": None if speaker == "Unknown" else f"spk{speaker}", "text": f"segment {i} words"}
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    detailed = ["FileName,Worker,EmoClass,EmoAct,EmoVal,EmoDom"]
    for name, votes in MSP_VOTES.items():
        detailed += [f"{name}.wav,WORKER{w:05d},{vote},4,4,4" for w, vote in enumerate(votes)]
    (root / "Labels" / "labels_detailed.csv").write_text("\n".join(detailed) + "\n", encoding="utf-8")
    return root, truth
