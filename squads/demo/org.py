"""The demo organisation's people and structure: tribes, domains, squads, people, sign-ins and
systems. Slugs here are stable: other apps' demo seeds (pipelines, monitoring, infra) refer to
them."""

GIT = "https://git.example.com"
RUNBOOKS = "https://runbooks.example.com"
DASHBOARDS = "https://grafana.example.com/d"
CHAT = "https://chat.example.com/channels"

# --- tribes ------------------------------------------------------------------------------------
# slug, name, description
TRIBES = [
    (
        "audio-experience",
        "Audio Experience",
        "Everything between pressing play and hearing music: playback on every device, audio "
        "delivery through the CDN, and the playlists and library listeners curate.",
    ),
    (
        "discovery",
        "Discovery",
        "Helping listeners find their next favourite song: search, recommendations, the home "
        "feed and radio.",
    ),
    (
        "platform-payments",
        "Platform & Payments",
        "The foundations every squad builds on: accounts and sign-in, subscriptions and "
        "payments, the developer platform and the data platform.",
    ),
]

# --- domains -----------------------------------------------------------------------------------
# slug, name, owner tribe, description
DOMAINS = [
    (
        "listening",
        "Listening",
        "audio-experience",
        "Streaming audio to listeners and managing what they keep: playback, delivery, playlists.",
    ),
    (
        "discovery",
        "Discovery",
        "discovery",
        "Finding music and podcasts: search, personalised recommendations, home and radio.",
    ),
    (
        "platform-commerce",
        "Platform & Commerce",
        "platform-payments",
        "Identity, subscriptions and payments, and the shared platform and data infrastructure.",
    ),
]

# --- squads ------------------------------------------------------------------------------------
# slug, name, tribe, mission
SQUADS = [
    (
        "playback",
        "Playback",
        "audio-experience",
        "Make pressing play instant and uninterrupted on every device, from phones to cars.",
    ),
    (
        "audio-delivery",
        "Audio Delivery",
        "audio-experience",
        "Deliver every track in the right format and quality, licensed and cached close to "
        "the listener.",
    ),
    (
        "playlists",
        "Playlists",
        "audio-experience",
        "Let listeners build, share and collaborate on playlists and keep their library in sync.",
    ),
    (
        "search",
        "Search",
        "discovery",
        "Find any track, artist, album, podcast or playlist in under 100 ms, with typos forgiven.",
    ),
    (
        "recommendations",
        "Recommendations",
        "discovery",
        "Recommend the right music at the right moment: Discover Weekly, daily mixes, related "
        "artists.",
    ),
    (
        "home-feed",
        "Home & Radio",
        "discovery",
        "Assemble a personal home screen and endless radio stations from everything we know.",
    ),
    (
        "payments",
        "Payments",
        "platform-payments",
        "Take payments in 180 markets reliably and fairly; no listener loses Premium by mistake.",
    ),
    (
        "identity",
        "Identity",
        "platform-payments",
        "Sign-up, sign-in and account security that listeners never have to think about.",
    ),
    (
        "developer-platform",
        "Developer Platform",
        "platform-payments",
        "Give squads paved roads: API gateway, feature flags, shared libraries and this portal.",
    ),
    (
        "data-platform",
        "Data Platform",
        "platform-payments",
        "Collect listening events once, reliably, and make them available to every squad.",
    ),
]

# --- people ------------------------------------------------------------------------------------
# slug, name, squad memberships [(squad, role)]
LEAD, PO, MEMBER = "lead", "product_owner", "member"
PEOPLE = [
    # playback
    ("alice", "Alice Andersson", [("playback", LEAD)]),
    ("maja-lindqvist", "Maja Lindqvist", [("playback", PO)]),
    ("tomas-berg", "Tomas Berg", [("playback", MEMBER)]),
    ("priya-natarajan", "Priya Natarajan", [("playback", MEMBER)]),
    # audio delivery
    ("jonas-ek", "Jonas Ek", [("audio-delivery", LEAD)]),
    ("fatima-haddad", "Fatima Haddad", [("audio-delivery", PO)]),
    ("oskar-nilsson", "Oskar Nilsson", [("audio-delivery", MEMBER)]),
    ("mei-chen", "Mei Chen", [("audio-delivery", MEMBER)]),
    # playlists
    ("sara-holm", "Sara Holm", [("playlists", LEAD)]),
    ("daniel-okafor", "Daniel Okafor", [("playlists", PO)]),
    ("elin-sjoberg", "Elin Sjöberg", [("playlists", MEMBER)]),
    ("lucas-moreau", "Lucas Moreau", [("playlists", MEMBER)]),
    # search
    ("erik-johansson", "Erik Johansson", [("search", LEAD)]),
    ("amina-yusuf", "Amina Yusuf", [("search", PO)]),
    ("bob", "Bob Brennan", [("search", MEMBER)]),
    ("hannah-weiss", "Hannah Weiss", [("search", MEMBER)]),
    # recommendations
    ("nadia-karlsson", "Nadia Karlsson", [("recommendations", LEAD)]),
    ("viktor-lund", "Viktor Lund", [("recommendations", PO)]),
    ("kenji-watanabe", "Kenji Watanabe", [("recommendations", MEMBER)]),
    ("sofia-rossi", "Sofia Rossi", [("recommendations", MEMBER)]),
    ("ines-garcia", "Inés García", [("recommendations", MEMBER)]),
    # home & radio
    ("henrik-dahl", "Henrik Dahl", [("home-feed", LEAD)]),
    ("chloe-martin", "Chloé Martin", [("home-feed", PO), ("playlists", MEMBER)]),
    ("arjun-mehta", "Arjun Mehta", [("home-feed", MEMBER)]),
    ("linnea-strand", "Linnea Strand", [("home-feed", MEMBER)]),
    # payments
    ("gustav-persson", "Gustav Persson", [("payments", LEAD)]),
    ("olivia-brown", "Olivia Brown", [("payments", PO)]),
    ("samuel-adeyemi", "Samuel Adeyemi", [("payments", MEMBER)]),
    ("klara-novak", "Klara Novák", [("payments", MEMBER)]),
    # identity
    ("anna-larsson", "Anna Larsson", [("identity", LEAD)]),
    ("mohammed-rahman", "Mohammed Rahman", [("identity", PO)]),
    ("julia-schmidt", "Julia Schmidt", [("identity", MEMBER)]),
    ("pedro-alves", "Pedro Alves", [("identity", MEMBER)]),
    # developer platform
    ("karin-wallin", "Karin Wallin", [("developer-platform", LEAD)]),
    ("david-cohen", "David Cohen", [("developer-platform", PO), ("data-platform", PO)]),
    ("yuki-tanaka", "Yuki Tanaka", [("developer-platform", MEMBER)]),
    ("leo-fischer", "Leo Fischer", [("developer-platform", MEMBER)]),
    # data platform
    ("ebba-forsberg", "Ebba Forsberg", [("data-platform", LEAD)]),
    ("noah-williams", "Noah Williams", [("data-platform", MEMBER)]),
    ("zara-ahmed", "Zara Ahmed", [("data-platform", MEMBER)]),
    # no squad
    ("charlie", "Charlie Chen-Moss", []),
    ("admin", "Backline Admin", []),
]

# Demo sign-ins: username -> (password, person slug, is_admin)
LOGINS = {
    "admin": ("backline-admin", "admin", True),
    "alice": ("backline-demo", "alice", False),
    "bob": ("backline-demo", "bob", False),
    "charlie": ("backline-demo", "charlie", False),
}

# --- systems -----------------------------------------------------------------------------------
# slug, name, owner squad, domain, description
SYSTEMS = [
    (
        "playback",
        "Playback",
        "playback",
        "listening",
        "Starting, controlling and syncing playback across devices.",
    ),
    (
        "audio-delivery",
        "Audio Delivery",
        "audio-delivery",
        "listening",
        "Transcoding, licensing checks and the edge cache that serve audio files.",
    ),
    (
        "playlists",
        "Playlists & Library",
        "playlists",
        "listening",
        "Playlists, collaborative playlists and the listener's saved library.",
    ),
    (
        "search",
        "Search",
        "search",
        "discovery",
        "Indexing the catalog and answering queries and autocompletion.",
    ),
    (
        "recommendations",
        "Recommendations",
        "recommendations",
        "discovery",
        "Candidate generation, features and ranking for personalised music.",
    ),
    (
        "home",
        "Home & Radio",
        "home-feed",
        "discovery",
        "The personal home screen, shelves and radio stations.",
    ),
    (
        "payments",
        "Payments & Subscriptions",
        "payments",
        "platform-commerce",
        "Plans, subscriptions, payment processing and the billing ledger.",
    ),
    (
        "identity",
        "Identity",
        "identity",
        "platform-commerce",
        "Accounts, sign-in, OAuth/OIDC and sessions.",
    ),
    (
        "edge-platform",
        "Edge Platform",
        "developer-platform",
        "platform-commerce",
        "API gateway, feature flags and shared client libraries.",
    ),
    (
        "listening-data",
        "Listening Data",
        "data-platform",
        "platform-commerce",
        "Event collection, listening history and royalty reporting.",
    ),
]

# lifecycles, as the service tables write them
P, X, D = "production", "experimental", "deprecated"
