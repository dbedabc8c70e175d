"""Fake names in the real file's style: artists, track titles, playlist names, user ids.

Names come from fixed vocabularies through seeded pattern choices, so the same generator
state gives the same names. They carry what real names carry and a reader must survive:
unicode, commas, unescaped inner quotes, emoji, one title shared by many artists, and
playlist names that thousands of users share. `check_name` rejects anything that would make
a row ambiguous in the file's format.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STARRED = "Starred"  # the playlist name Spotify gives a user's liked tracks

# --------------------------------------------------------------------------- vocabularies

GENRES = [
    "Pop", "Rock", "Hip Hop", "Indie", "Electronic", "R&B", "Country", "Jazz", "Classical",
    "Metal", "Folk", "Latin", "Reggae", "Punk", "Blues", "Soul", "Funk", "House", "Techno",
    "K-Pop", "J-Pop", "Ambient", "Trap", "Disco", "Gospel", "Grunge", "Ska", "Drum & Bass",
    "Dubstep", "Bossa Nova", "Flamenco", "Afrobeat", "Synthwave", "Lo-fi", "Emo", "Shoegaze",
    "Opera", "Bluegrass", "Reggaeton", "Chanson", "Schlager", "Soundtrack",
]
FIRST = [
    "Anna", "Ben", "Carla", "David", "Elena", "Frank", "Grace", "Hugo", "Ida", "Jack", "Karin",
    "Leo", "Maria", "Nils", "Olivia", "Paul", "Rosa", "Sam", "Tom", "Vera", "Zoë", "José", "Björn",
    "Søren", "Łukasz", "François", "Ana", "Mei", "Hiro", "Yuki", "Jae-won", "Aigerim", "Chloé",
    "Mateo", "Lucía", "Émile", "Noah", "Liam", "Emma", "Mia", "Sofia", "Lars", "Ingrid", "Astrid",
    "Kofi", "Amara", "Ravi", "Priya", "Arjun", "Omar", "Layla", "Yusuf", "Selin", "Dmitri", "Olga",
    "Nikolai", "Tatiana", "Marco", "Giulia", "Luca", "Chiara", "Sean", "Niamh", "Aoife", "Kai",
    "Leilani", "Tariq", "Nadia", "Fatima", "Hana", "Jin", "Min-ji", "Wei", "Ling", "Thabo",
    "Zanele", "Diego", "Camila", "Joaquín", "Inés", "Rafael", "Beatriz", "João", "Mariana",
    "Ólafur", "Sigrún", "Henrik", "Malin", "Pekka", "Aino", "Jürgen", "Helga", "Miles", "Ella",
    "Nina", "Ray", "Otis", "Etta", "Dolly", "Johnny", "Willie", "Patsy", "Buddy",
]
LAST = [
    "Smith", "Johnson", "Brown", "Miller", "Davis", "Garcia", "Rodríguez", "Martínez", "Hernández",
    "López", "González", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin",
    "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell",
    "Roberts", "Carter", "Phillips", "Evans", "Turner", "Torres", "Parker", "Collins", "Edwards",
    "Stewart", "Flores", "Morris", "Nguyen", "Murphy", "Rivera", "Cook", "Rogers", "Morgan",
    "Peterson", "Cooper", "Reed", "Bailey", "Bell", "Gómez", "Kelly", "Howard", "Ward", "Cox",
    "Díaz", "Richardson", "Wood", "Watson", "Brooks", "Bennett", "Gray", "James", "Reyes", "Cruz",
    "Hughes", "Price", "Myers", "Long", "Foster", "Sanders", "Ross", "Morales", "Powell",
    "Sullivan", "Russell", "Ortiz", "Jenkins", "Gutiérrez", "Perry", "Butler", "Barnes", "Fisher",
    "Henderson", "Coleman", "Simmons", "Patterson", "Jordan", "Reynolds", "Hamilton", "Graham",
    "Kim", "Park", "Choi", "Tanaka", "Suzuki", "Yamamoto", "Watanabe", "Sato", "Müller", "Schmidt",
    "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Hoffmann", "Schäfer", "Koch",
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsen", "Hansen",
    "Jensen", "Nielsen", "Kowalski", "Nowak", "Wiśniewski", "Novák", "Svoboda", "Dvořák", "Rossi",
    "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Dubois", "Lefèvre", "Moreau", "Laurent",
    "Girard", "Bonnet", "Silva", "Santos", "Oliveira", "Souza", "Pereira", "Costa", "Ivanov",
    "Petrov", "Smirnov", "O'Brien", "O'Connor", "McCarthy", "Okafor", "Mensah", "Diallo", "Haddad",
    "Khoury", "Yilmaz", "Kaya", "Demir", "Singh", "Patel", "Sharma", "Gupta", "Khan", "Ahmed",
]
ADJ = [
    "Golden", "Silver", "Broken", "Electric", "Midnight", "Summer", "Lonely", "Wild", "Young",
    "Sweet", "Blue", "Red", "Black", "White", "Crystal", "Velvet", "Neon", "Paper", "Glass",
    "Burning", "Frozen", "Silent", "Hollow", "Lost", "Hidden", "Little", "Big", "Dirty", "Pretty",
    "Crazy", "Holy", "Secret", "Strange", "Cold", "Warm", "Bright", "Dark", "Endless", "Falling",
    "Rising", "Northern", "Southern", "Distant", "Gentle", "Savage", "Lucky", "Magic", "Cosmic",
    "Lunar", "Solar", "Quiet", "Loud", "Faded", "Easy", "Heavy", "Tender", "Restless", "Sleepy",
    "Honest", "Wicked", "Perfect", "Sacred", "Fragile", "Royal", "Modern", "Ancient", "Final",
    "Sunday", "Friday", "Rainy", "Stormy", "Purple", "Scarlet", "Emerald", "Copper", "Iron",
    "Rusty", "Dusty", "Shiny", "Empty", "Open", "Famous", "Simple", "Tiny", "Giant", "Twisted",
    "Happy", "Sad", "Blind", "Green", "Éternel", "Dolce", "Süße", "Mörk", "Fría", "Azul", "Noir",
    "Petit", "Schwarz", "Bella", "Libre", "Salvaje",
]
NOUN = [
    "Heart", "Fire", "Rain", "River", "Ocean", "Sky", "Star", "Moon", "Sun", "Dream", "Road",
    "City", "Night", "Day", "Light", "Shadow", "Ghost", "Angel", "Devil", "Love", "Soul", "Mind",
    "Eyes", "Hands", "Lies", "Tears", "Waves", "Wind", "Storm", "Thunder", "Garden", "Forest",
    "Mountain", "Desert", "Island", "Highway", "Train", "Radio", "Telephone", "Letter", "Mirror",
    "Window", "Door", "House", "Room", "Kingdom", "Empire", "Paradise", "Heaven", "Winter",
    "Spring", "Autumn", "Morning", "Evening", "Memory", "Story", "Song", "Dance", "Fever", "Gold",
    "Diamond", "Honey", "Sugar", "Wine", "Whiskey", "Coffee", "Cigarette", "Rose", "Lily", "Tiger",
    "Wolf", "Bird", "Butterfly", "Horse", "Snake", "Lion", "Queen", "King", "Prince", "Girl",
    "Boy", "Baby", "Lover", "Stranger", "Friend", "Machine", "Robot", "Satellite", "Rocket",
    "Planet", "Galaxy", "Universe", "Corazón", "Amor", "Noche", "Vida", "Cœur", "Liebe", "Nacht",
    "Sommar", "Saudade", "Echo", "Horizon", "Harbor", "Lighthouse", "Valley", "Canyon", "Meadow",
    "Thorn", "Feather", "Stone", "Bone", "Blood", "Smoke", "Ash", "Dust", "Glitter", "Velvet",
    "Silk", "Wire", "Signal", "Static", "Circuit", "Neon", "Carousel", "Circus", "Parade",
    "Avenue", "Boulevard", "Station", "Airport", "Motel", "Hotel", "Diner", "Jukebox", "Guitar",
    "Piano", "Drum", "Violin", "Trumpet", "Choir", "Anthem", "Ballad", "Lullaby", "Serenade",
    "Symphony", "Rhapsody", "Requiem", "Sonata", "Cathedral", "Chapel", "Temple", "Tower",
    "Bridge", "Tunnel", "Harvest", "Orchard", "Vineyard", "Glacier", "Volcano", "Comet", "Meteor",
    "Eclipse", "Aurora",
]
VERB = [
    "Chasing", "Waiting for", "Dancing with", "Running from", "Falling for", "Dreaming of",
    "Looking for", "Living on", "Lost in", "Burning", "Breaking", "Calling", "Kissing", "Fighting",
    "Holding", "Leaving", "Finding", "Saving", "Following", "Counting", "Riding", "Crossing",
    "Stealing", "Painting", "Remember",
]
COMMON = [
    "Intro", "Outro", "Interlude", "Home", "Stay", "Alive", "Forever", "Hold On", "Closer",
    "Runaway", "Angel", "Breathe", "Falling", "Gravity", "Paradise", "Heaven", "Hurricane",
    "Wonderland", "Tonight", "Yesterday", "Sunday Morning", "Summertime", "Crazy", "Reprise",
    "Untitled", "Lullaby", "Skit", "Home Again",
]
PHRASES = [
    "Don't Let Me Go", "Hold Me Tight", "Take Me Home", "Let It Burn", "I Want You", "You & I",
    "Never Again", "One More Time", "All Night Long", "Here We Go", "Say Something",
    "Come Back to Me", "Where Did You Go?", "What If", "I Remember", "We Are Young", "Don't Stop",
    "Keep Me Close", "Tell Me Why", "Can't Stop Now", "It's Over", "I'm Not Sorry", "Wait for Me",
    "Dance With Me", "Turn It Up", "Let's Go", "Oh My God", "So Long", "Goodbye, My Friend",
    "Kiss Me, Baby",
]
INTL = [
    "夜空", "さくら", "東京の夜", "君に届け", "夏の終わり", "雨の歌", "사랑해", "안녕", "봄날", "밤하늘", "朋友", "月光",
    "Canción del mar", "Je ne sais pas", "Mon amour", "Ich vermisse dich", "Tack för allt",
    "Saudade", "Corazón roto", "La vie en bleu", "Noche de verano", "Día perfecto", "Été indien",
    "Sommernacht", "Vinterland", "Ça va", "Mañana", "Querida", "Niño", "Übermorgen",
    "Ljus i mörkret", "Fado da saudade", "Ya no más", "À bientôt", "Kärlek", "Szczęście", "Дорога",
    "Звезда", "Ночь", "Habibi", "Yalla",
]
CJK_NAMES = [
    "山田 花子", "佐藤 太郎", "鈴木 美雨", "高橋 陽菜", "田中 蓮", "渡辺 結衣", "中島 みゆき", "김 민준", "이 서연", "박 지우", "최 하은",
    "정 예준", "王 菲", "李 宇", "张 静", "刘 杰", "陈 悦", "宇多田", "椎名", "아이유", "볼빨간", "周 杰", "林 俊",
]
NICK = [
    "Weird", "Big", "Lil", "Fats", "Smokey", "Sugar", "Boom", "Doc", "Kid", "Slim", "Bird", "Ace",
    "Duke", "Red", "Sonny",
]
GROUP = [
    "Band", "Trio", "Quartet", "Orchestra", "Ensemble", "Collective", "Experience", "Project",
    "Sound System",
]
CITIES = [
    "Paris", "Tokyo", "Berlin", "Lisbon", "Nashville", "Reykjavík", "São Paulo", "Montréal",
    "Zürich", "Kraków",
]
EMOJI = ("✨", "🔥", "💔", "🌙", "☀️", "🎶", "❤️")
GENERIC_PL = [
    "Chill", "Workout", "Road trip", "Party", "Summer", "Favorites", "Favourites", "Sleep",
    "Study", "Running", "Morning", "Rainy days", "Dinner", "Love songs", "Throwback", "Car", "Gym",
    "Focus", "Mellow", "Sad songs", "Wedding", "Christmas", "Liked from Radio", "My Shazam Tracks",
    "Good vibes", "Chill — Sunday", "Songs I like, mostly", '"Indie" stuff', "Party 🎉",
    "Road trip 🚗", "Música para el coche", "Träning", "Sommer", "Fête", "夏の歌", "운동", "Dance",
    "Relax", "Old but gold", "New music", "Discover", "Top tracks", "Guilty pleasures",
    "Feel good", "Late night", "Sunday morning", "Coffee ☕", "Beach", "Acoustic", "Covers",
    "Instrumental", "Karaoke", "Cooking", "Cleaning", "Commute", "Work", "Office", "Kids", "90s",
    "80s", "70s", "Oldies", "Classics", "Mix", "Playlist", "Music", "New Playlist", "Misc",
    "Random", "Stuff", "ok", "x",
]
YEAR_PL = [
    "Best of {y}", "Summer {y}", "{y}", "Top {y}", "Christmas {y}", "Festival {y}", "Roskilde {y}",
    "New in {y}",
]
GENRE_PL = [
    "{g}", "{g} Mix", "Best of {g}", "{g} classics", "{g} favorites", "My {g}", "Old {g}",
    "{g} 2013", "{g} & {h}", "{g}/{h}",
]


# --------------------------------------------------------------------------- patterns


def _plural(noun: str) -> str:
    if noun.endswith("s"):  # Eyes, Waves: already plural
        return noun
    if noun.endswith(("x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


def _pick(vocab: list[str] | tuple[str, ...], idx: int) -> str:
    return vocab[idx % len(vocab)]


# one builder per pattern, each (a, b, c) -> name; built once, called per name
_ARTIST_FNS = (
    lambda a, b, c: f"{_pick(FIRST, a)} {_pick(LAST, b)}",
    lambda a, b, c: f"{_pick(FIRST, a)} {chr(65 + c % 26)}. {_pick(LAST, b)}",
    lambda a, b, c: f"The {_pick(ADJ, c)} {_plural(_pick(NOUN, b))}",
    lambda a, b, c: f"{_pick(ADJ, c)} {_pick(NOUN, b)}",
    lambda a, b, c: _pick(NOUN, b).upper() if a % 2 else f"{_pick(ADJ, c)}{_pick(NOUN, b).lower()}",
    lambda a, b, c: f"{_pick(['DJ', 'MC', 'Lil', 'Young', 'Big', 'Dr.'], c)} "
                    f"{_pick(FIRST, a) if a % 2 else _pick(NOUN, b)}",
    lambda a, b, c: f"{_pick(FIRST, a)} {_pick(LAST, b)} & the {_plural(_pick(NOUN, c))}",
    lambda a, b, c: f"{_pick(LAST, b)}, {_pick(LAST, a * 7 + c)} & {_pick(LAST, c * 13 + b)}",
    lambda a, b, c: (f'{_pick(FIRST, a)} "{_pick(NICK, c)}" {_pick(LAST, b)}' if a % 2
                     else f'"{_pick(NICK, c)}" {_pick(FIRST, a)} {_pick(LAST, b)}'),
    lambda a, b, c: _pick(CJK_NAMES, a + b + c),
    lambda a, b, c: f"{_pick(FIRST, a)} {_pick(LAST, b)} {_pick(GROUP, c)}",
    lambda a, b, c: f"{_pick(FIRST, a)} {_pick(LAST, b)} & {_pick(FIRST, c)} {_pick(LAST, a + c)}",
    lambda a, b, c: f"{_pick(NOUN, b)} {_pick(NOUN, c)}",
    lambda a, b, c: f"{_pick(LAST, b)}-{_pick(LAST, c)}",
)


_ARTIST_P = [0.18, 0.10, 0.10, 0.07, 0.03, 0.05, 0.08, 0.05, 0.03, 0.02, 0.06, 0.10, 0.05, 0.08]
_ARTIST_BIG = [1, 6, 7, 11]  # patterns with a large name space, for collision retries


def artist_names(n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct artist names (real-world style: unicode, commas, quoted nicknames).

    Args:
        n: number of names.
        rng: random generator.
    """
    names: list[str] = []
    seen: set[str] = set()
    patterns, probs = np.arange(len(_ARTIST_P)), np.array(_ARTIST_P) / sum(_ARTIST_P)
    while len(names) < n:
        want = int((n - len(names)) * 1.2) + 16
        pat = rng.choice(patterns, size=want, p=probs) if not names else rng.choice(_ARTIST_BIG, size=want)
        abc = rng.integers(0, 1 << 30, size=(want, 3)).tolist()
        for pt, (a, b, c) in zip(pat.tolist(), abc):
            name = _ARTIST_FNS[pt](a, b, c)
            if name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) == n:
                    break
    return names


_TITLE_FNS = (
    lambda a, b, c: _pick(COMMON, a),  # the same title for many artists
    lambda a, b, c: f"{_pick(ADJ, a)} {_pick(NOUN, b)}",
    lambda a, b, c: _pick(NOUN, b),
    lambda a, b, c: f"{_pick(NOUN, b)} of {'the ' if c % 2 else ''}{_pick(NOUN, c)}",
    lambda a, b, c: f"{_pick(VERB, a)} the {_pick(NOUN, b)}",
    lambda a, b, c: f"{_pick(ADJ, a)}, {_pick(ADJ, b)} & {_pick(ADJ, c)}",
    lambda a, b, c: (f'The "{_pick(ADJ, a)}" {_pick(NOUN, b)}' if c % 3 == 0
                     else f'"{_pick(NOUN, b)}"' if c % 3 == 1
                     else f'{_pick(NOUN, b)} Called "{_pick(NOUN, c)}"'),
    lambda a, b, c: _pick(INTL, a + c),
    lambda a, b, c: _pick(PHRASES, a + c),
    lambda a, b, c: f"{_pick(NOUN, b)} {_pick(NOUN, c)}",
    lambda a, b, c: f"{'My' if c % 2 else 'Your'} {_pick(ADJ, a)} {_pick(NOUN, b)}",
    lambda a, b, c: f"{_pick(ADJ, a)} {_pick(NOUN, b)} — Part {('I', 'II', 'III', 'IV')[c % 4]}",
    lambda a, b, c: f"{_pick(ADJ, a)} {_pick(NOUN, b)} {_pick(('Blues', 'Song', 'Waltz', 'Theme', 'Suite'), c)}",
    lambda a, b, c: f"{_pick(NOUN, b)} {'in' if c % 2 else 'on'} the {_pick(NOUN, c)}",
)


_TITLE_P = [0.06, 0.26, 0.05, 0.08, 0.10, 0.03, 0.03, 0.05, 0.06, 0.08, 0.05, 0.03, 0.04, 0.08]
_TITLE_BIG = [1, 3, 4, 9, 10, 12, 13]


_SUFFIX_FNS = (
    lambda a, feat: "",
    lambda a, feat: f" - Remastered {1995 + a % 21}",
    lambda a, feat: f" - {1995 + a % 21} Remaster",
    lambda a, feat: " - Live",
    lambda a, feat: f" - Live in {_pick(CITIES, a)}",
    lambda a, feat: " - Radio Edit",
    lambda a, feat: " - Acoustic Version",
    lambda a, feat: " - Original Mix",
    lambda a, feat: f" (feat. {feat})",
    lambda a, feat: f" {_pick(EMOJI, a)}",
)


_SUFFIX_P = [0.855, 0.025, 0.015, 0.012, 0.005, 0.012, 0.01, 0.01, 0.05, 0.006]


def track_names(track_artist: np.ndarray, artists: list[str], rng: np.random.Generator) -> list[str]:
    """Track titles, distinct within each artist; common titles repeat across artists.

    Args:
        track_artist: (n_tracks,) artist of each track.
        artists: artist names, for "(feat. ...)" suffixes.
        rng: random generator.
    """
    n = len(track_artist)
    idx = np.arange(n)
    pat = rng.choice(len(_TITLE_P), size=n, p=np.array(_TITLE_P) / sum(_TITLE_P))
    names = [""] * n
    for attempt in range(12):
        abc = rng.integers(0, 1 << 30, size=(len(idx), 3)).tolist()
        suf = rng.choice(len(_SUFFIX_P), size=len(idx), p=_SUFFIX_P).tolist()
        feat = rng.integers(0, len(artists), size=len(idx)).tolist()
        tail = f" (Take {attempt})" if attempt >= 8 else ""  # last resort: a take number
        for i, pt, (a, b, c), s, f in zip(idx.tolist(), pat.tolist(), abc, suf, feat):
            names[i] = _TITLE_FNS[pt](a, b, c) + _SUFFIX_FNS[s](a, artists[f]) + tail
        dup = pd.DataFrame({"a": track_artist, "n": names}).duplicated().to_numpy()
        if not dup.any():
            return names
        idx = np.flatnonzero(dup)
        pat = rng.choice(_TITLE_BIG, size=len(idx))
    raise RuntimeError("could not make track names distinct within artists")


def playlist_names(pl_user: np.ndarray, g1: np.ndarray, g2: np.ndarray, is_starred: np.ndarray,
                   genre_names: list[str], rng: np.random.Generator) -> list[str]:
    """Names from a shared vocabulary (so thousands of users share them), some unique.

    A user's playlist names are distinct: the real file identifies a playlist by
    (user_id, playlistname), so a repeat gets a ' 2', ' 3' suffix as real users do.

    Args:
        pl_user: (n_playlists,) owner of each playlist.
        g1: (n_playlists,) the playlist's theme genre, -1 for Starred.
        g2: (n_playlists,) its second theme genre, -1 for none.
        is_starred: (n_playlists,) True for the owner's 'Starred' playlist.
        genre_names: name of each genre id.
        rng: random generator.
    """
    n = len(pl_user)
    kind = rng.choice(4, size=n, p=[0.42, 0.25, 0.12, 0.21]).tolist()
    abc = rng.integers(0, 1 << 30, size=(n, 3)).tolist()
    taken: dict[int, set[str]] = {}
    names = [""] * n
    for i in np.argsort(is_starred, kind="stable")[::-1].tolist():  # Starred claims its name first
        user, (a, b, c) = int(pl_user[i]), abc[i]
        if is_starred[i]:
            name = STARRED
        elif kind[i] == 0:
            name = _pick(GENERIC_PL, a)
        elif kind[i] == 1:
            g = genre_names[g1[i]]
            h = genre_names[g2[i]] if g2[i] >= 0 else _pick(genre_names, b)
            name = _pick(GENRE_PL, a).format(g=g, h=h)
        elif kind[i] == 2:
            name = _pick(YEAR_PL, a).format(y=2005 + b % 11)
        else:
            first, noun, adj = _pick(FIRST, a), _pick(NOUN, b), _pick(ADJ, c)
            name = [f"{first}'s {noun.lower()} mix", f"{adj} {noun} ({2008 + a % 8})",
                    f"for {first} ♥", f"{noun} {_pick(NOUN, c)} #{1 + b % 50}",
                    f"música de {first}", f"{first} & {_pick(FIRST, c)}",
                    f"{adj.lower()} {noun.lower()} vibes", f"{noun} — {_pick(CITIES, c)}"][b % 8]
        seen = taken.setdefault(user, set())
        base, k = name, 2
        while name in seen or (name == STARRED and not is_starred[i]):
            name, k = f"{base} {k}", k + 1
        seen.add(name)
        names[i] = name
    return names


def user_ids(n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct md5-like 32-char lowercase hex ids.

    Args:
        n: number of ids.
        rng: random generator.
    """
    raw = rng.bytes(16 * n)
    ids = [raw[16 * i: 16 * i + 16].hex() for i in range(n)]
    if len(set(ids)) != n:
        raise RuntimeError("user id collision")
    return ids


def check_name(name: str) -> None:
    """Raise ValueError if `name` would make a good row ambiguous or malformed.

    Args:
        name: an artist, track or playlist name.
    """
    if (not name or name != name.strip() or '","' in name or name.startswith(',"')
            or name.endswith('",') or "\n" in name or "\r" in name):
        raise ValueError(f"name would break the row format: {name!r}")

