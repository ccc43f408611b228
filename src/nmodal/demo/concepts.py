"""The demo corpus's vocabulary: emoji concepts grouped into themed accounts, languages,
background colours and post templates.

Accounts are a hand-written, themed grouping of emoji (the ``emoji`` package carries no
Unicode groups, and code-point ranges mix themes): eight "channels" of 44-77 concepts each,
458 concepts in all, every one of them present in ``emoji.EMOJI_DATA`` with a name in all 14
of its languages and drawn by Noto Color Emoji. Stance is a binary split of the accounts:
``living`` (animals, food, nature, people and clothing) against ``made`` (vehicles and
places, games and sports, tools and objects, signs and symbols).

A post's text names its emoji in one of the 14 languages and the background colour of its
video, inside one of three sentence templates per language; every template yields at least
five whitespace-separated words, so posts pass the paper's ">= 5 words" filter even in
Japanese and Chinese (written here with spaces between phrases).

Example:
    >>> table = concept_table()
    >>> len(table), table[0].account
    (458, 'wild_things')
    >>> concept_name("🦉", "ru")
    'сова'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

# account -> emoji, space separated (one concept each; order fixes the concept index)
ACCOUNTS: dict[str, str] = {
    "wild_things": (
        "🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🐔 🐧 🦆 🦅 🦉 🦇 🐺 🐗 🐴 🦄 🐝 🦋 🐌 🐞 "
        "🐜 🕷 🦂 🐢 🐍 🦎 🦖 🐙 🦑 🦀 🐡 🐠 🐬 🐳 🦈 🐊 🦓 🦍 🐘 🦛 🦏 🐪 🦒 🦘 🐑 🦙 🐐 🦌 🦃 "
        "🦚 🦜 🦢 🦩 🦔 🦥 🦦 🦨"
    ),
    "kitchen_table": (
        "🍏 🍐 🍊 🍋 🍌 🍉 🍇 🍓 🍒 🍑 🥭 🍍 🥥 🥝 🍅 🍆 🥑 🥦 🥕 🌽 🌶 🥔 🧄 🥐 🥖 🥨 🧀 🥚 🥞 "
        "🥓 🍗 🌭 🍔 🍟 🍕 🥪 🌮 🌯 🥗 🍝 🍜 🍣 🍱 🥟 🍤 🍙 🍦 🍩 🍪 🎂 🍰 🧁 🍫 🍿 🍯 🥛 ☕ 🍵 "
        "🍺 🍷 🍸 🍹 🧊"
    ),
    "green_planet": (
        "🌵 🎄 🌲 🌳 🌴 🌱 🌿 🍀 🍁 🍂 🍄 🐚 🌾 💐 🌷 🌹 🥀 🌺 🌸 🌼 🌻 🌞 🌝 🌛 🌚 🌕 🌙 🌎 🪐 "
        "⭐ 🌟 ⚡ ☄ 🔥 🌪 🌈 ☀ ⛅ ☁ 🌧 ⛈ 🌩 🌨 ❄ ☃ ⛄ 💧 ☔ 🌊 🌋 🏔 🏝 🏜"
    ),
    "wardrobe": (
        "👓 🕶 🥽 🥼 👔 👕 👖 🧣 🧤 🧥 🧦 👗 👘 👙 👛 👜 🎒 👞 👟 🥾 👠 👢 👑 👒 🎩 🎓 🧢 ⛑ 💄 "
        "💍 💼 🌂 👀 👅 👄 🦷 🦴 👃 👂 🦶 🦵 💪 🧠 👣"
    ),
    "on_the_road": (
        "🚗 🚕 🚌 🚎 🏎 🚓 🚑 🚒 🚐 🚚 🚜 🛴 🚲 🛵 🏍 🚨 🚡 🚠 🚃 🚄 🚂 🚇 ✈ 🛩 🛰 🚀 🛸 🚁 🛶 "
        "⛵ 🚤 🛳 🚢 ⚓ ⛽ 🚧 🚦 🗺 🗿 🗽 🗼 🏰 🏯 🏟 🎡 🎢 🎠 ⛲ ⛺ 🏠 🏭 🏥 🏦 ⛪ 🕌"
    ),
    "game_day": (
        "⚽ 🏀 🏈 ⚾ 🎾 🏐 🏉 🎱 🏓 🏸 🏒 🏑 🏏 🥅 ⛳ 🏹 🎣 🥊 🥋 🛹 🛷 ⛸ 🥌 🎿 🏆 🥇 🏅 🎫 🎪 "
        "🎭 🎨 🎬 🎤 🎧 🎹 🥁 🎷 🎺 🎸 🎻 🎲 ♟ 🎯 🎳 🎮 🎰 🧩 🪁"
    ),
    "workshop": (
        "⌚ 📱 💻 ⌨ 🖥 🖨 🖱 🕹 💾 💿 📼 📷 📹 🎥 📞 ☎ 📺 📻 🎙 🧭 ⏰ ⌛ 📡 🔋 🔌 💡 🔦 🕯 🧯 "
        "💰 💳 💎 ⚖ 🧰 🔧 🔨 🛠 ⛏ 🔩 ⚙ 🧱 ⛓ 🧲 🪓 🔪 🛡 🔮 🔭 🔬 💊 💉 🧪 🌡 🧹 🧺 🧻 🚿 🛁 "
        "🧼 🧽 🔑 🚪 🪑 🛏 🧸 🎁 🎈 📦 📜 📚 📎 📌 ✂ 🖊 ✏ 🔍 🔒"
    ),
    "signal_board": (
        "❤ 💔 💯 💢 💤 💥 💫 💬 🔔 🔕 🎵 🚫 ⛔ 🛑 ⚠ ♻ ✅ ❌ ❓ ❗ ☢ ☣ ☮ ☯ ♈ ♉ ♊ ♋ ♌ ♍ ♎ ♏ 🔞 "
        "📵 🚭 🚻 ♿ 🅿 🆘 🆗 🆕 🆒 🆓 🔝 🔰 🏁 🚩 🏳 🎌 💠 🌀 🔆"
    ),
}

STANCE: dict[str, str] = {
    "wild_things": "living",
    "kitchen_table": "living",
    "green_planet": "living",
    "wardrobe": "living",
    "on_the_road": "made",
    "game_day": "made",
    "workshop": "made",
    "signal_board": "made",
}

# emoji's languages -> espeak-ng voice
VOICES: dict[str, str] = {
    "en": "en",
    "es": "es",
    "ja": "ja",
    "ko": "ko",
    "pt": "pt",
    "it": "it",
    "fr": "fr",
    "de": "de",
    "fa": "fa",
    "id": "id",
    "zh": "cmn",
    "ru": "ru",
    "tr": "tr",
    "ar": "ar",
}
LANGUAGES: tuple[str, ...] = tuple(VOICES)

# background colours: RGB, and the word each language uses in its templates' colour slot
# (inflected to agree with that language's word for "background").
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "green": (46, 160, 67),
    "blue": (38, 84, 214),
    "yellow": (242, 208, 36),
    "purple": (134, 58, 184),
    "orange": (245, 134, 28),
    "black": (22, 22, 26),
    "white": (244, 244, 240),
}
COLOURS: tuple[str, ...] = tuple(COLOUR_RGB)
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("red", "green", "blue", "yellow", "purple", "orange", "black", "white"),
    "es": ("rojo", "verde", "azul", "amarillo", "morado", "naranja", "negro", "blanco"),
    "ja": ("赤", "緑", "青", "黄色", "紫", "オレンジ", "黒", "白"),
    "ko": ("빨간", "초록", "파란", "노란", "보라", "주황", "검은", "흰"),
    "pt": ("vermelho", "verde", "azul", "amarelo", "roxo", "laranja", "preto", "branco"),
    "it": ("rosso", "verde", "blu", "giallo", "viola", "arancione", "nero", "bianco"),
    "fr": ("rouge", "vert", "bleu", "jaune", "violet", "orange", "noir", "blanc"),
    "de": (
        "rotem",
        "grünem",
        "blauem",
        "gelbem",
        "violettem",
        "orangefarbenem",
        "schwarzem",
        "weißem",
    ),
    "fa": ("قرمز", "سبز", "آبی", "زرد", "بنفش", "نارنجی", "سیاه", "سفید"),
    "id": ("merah", "hijau", "biru", "kuning", "ungu", "oranye", "hitam", "putih"),
    "zh": ("红", "绿", "蓝", "黄", "紫", "橙", "黑", "白"),
    "ru": (
        "красном",
        "зелёном",
        "синем",
        "жёлтом",
        "фиолетовом",
        "оранжевом",
        "чёрном",
        "белом",
    ),
    "tr": ("kırmızı", "yeşil", "mavi", "sarı", "mor", "turuncu", "siyah", "beyaz"),
    "ar": ("حمراء", "خضراء", "زرقاء", "صفراء", "بنفسجية", "برتقالية", "سوداء", "بيضاء"),
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "Look at this {name} on a {colour} background today",
        "New clip from our channel: {name} on {colour}",
        "Everyone is sharing the {name} with a {colour} background",
    ),
    "es": (
        "Mira este video: {name} sobre fondo {colour} hoy",
        "Nuevo clip del canal: {name} con fondo {colour}",
        "Todos comparten {name} en fondo {colour}",
    ),
    "ja": (
        "この 動画 を 見て: {colour}の 背景 に {name}",
        "チャンネル の 新しい クリップ: {colour}の 背景 の {name}",
        "今日 は みんな が {colour}の 背景 の {name} を 共有",
    ),
    "ko": (
        "이 영상을 보세요: {colour} 배경 위의 {name}",
        "우리 채널의 새 클립: {colour} 배경의 {name}",
        "오늘 모두가 {colour} 배경의 {name} 공유 중",
    ),
    "pt": (
        "Vejam este vídeo: {name} com fundo {colour}",
        "Novo clipe do canal: {name} em fundo {colour}",
        "Todos estão compartilhando {name} com fundo {colour}",
    ),
    "it": (
        "Guardate questo video: {name} su sfondo {colour}",
        "Nuovo clip del canale: {name} su sfondo {colour}",
        "Tutti condividono {name} su sfondo {colour} oggi",
    ),
    "fr": (
        "Regardez cette vidéo : {name} sur fond {colour}",
        "Nouveau clip de la chaîne : {name}, fond {colour}",
        "Tout le monde partage {name} sur fond {colour}",
    ),
    "de": (
        "Schaut euch das an: {name} auf {colour} Hintergrund",
        "Neues Video im Kanal: {name} auf {colour} Hintergrund",
        "Heute teilen alle {name} auf {colour} Hintergrund",
    ),
    "fa": (
        "این ویدیو را ببینید: {name} با پس زمینه {colour}",
        "کلیپ جدید کانال: {name} روی پس زمینه {colour}",
        "امروز همه {name} با پس زمینه {colour} را می‌فرستند",
    ),
    "id": (
        "Lihat video ini: {name} dengan latar {colour}",
        "Klip baru dari kanal kami: {name} latar {colour}",
        "Semua orang membagikan {name} dengan latar {colour}",
    ),
    "zh": (
        "快 来 看 这个 视频: {colour}色 背景 上 的 {name}",
        "频道 新 视频: {colour}色 背景 的 {name}",
        "今天 大家 都 在 分享 {colour}色 背景 的 {name}",
    ),
    "ru": (
        "Смотрите: {name} на {colour} фоне, новое видео",
        "Сегодня в канале {name} на {colour} фоне",
        "Друзья, вот {name} на {colour} фоне, делитесь",
    ),
    "tr": (
        "Bu videoya bakın: {colour} arka planda {name}",
        "Kanalımızdan yeni klip: {colour} arka planda {name}",
        "Bugün herkes {colour} arka planda {name} paylaşıyor",
    ),
    "ar": (
        "شاهدوا هذا الفيديو: {name} على خلفية {colour}",
        "مقطع جديد من القناة: {name} على خلفية {colour}",
        "الجميع يشارك {name} على خلفية {colour} اليوم",
    ),
}


@dataclass(frozen=True)
class Concept:
    """One emoji concept: its index in the table, the emoji and the account it belongs to."""

    index: int
    emoji: str
    account: str

    @property
    def stance(self) -> str:
        return STANCE[self.account]


@lru_cache(maxsize=1)
def concept_table() -> tuple[Concept, ...]:
    """All concepts, in table order (the index is stable across runs and machines)."""
    out: list[Concept] = []
    for account, chars in ACCOUNTS.items():
        for ch in chars.split():
            out.append(Concept(len(out), ch, account))
    return tuple(out)


@lru_cache(maxsize=1)
def _emoji_data() -> dict[str, dict[str, object]]:
    import emoji

    for lang in LANGUAGES:
        if lang != "en":
            emoji.config.load_language(lang)
    data: dict[str, dict[str, object]] = emoji.EMOJI_DATA
    return data


def emoji_key(ch: str) -> str:
    """The emoji as ``emoji.EMOJI_DATA`` and fonts know it (with VS16 where it needs one)."""
    qualified = ch + "\ufe0f"
    return qualified if qualified in _emoji_data() else ch


def concept_name(ch: str, lang: str) -> str:
    """The emoji's CLDR short name in ``lang`` (``":burung_hantu:"`` -> ``"burung hantu"``)."""
    data = _emoji_data()
    entry = data.get(emoji_key(ch)) or data.get(ch)
    if entry is None or lang not in entry:
        raise KeyError(f"no {lang!r} name for emoji {ch!r}")
    return str(entry[lang]).strip(":").replace("_", " ")


def post_text(ch: str, lang: str, colour: str, template: int) -> str:
    """The text of a post about emoji ``ch`` on a ``colour`` background, in ``lang``."""
    word = COLOUR_WORDS[lang][COLOURS.index(colour)]
    return TEMPLATES[lang][template].format(name=concept_name(ch, lang), colour=word)
