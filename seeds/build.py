"""Rebuild the offline seed fixtures: one feed per outlet, one article page per seed.

The verbatim seed articles (*.txt next to this file) are the only input. Everything else,
the headlines, feed metadata and all the page chrome, is invented here so that the daemon
can be exercised end to end without the network. The output is committed and
tests/test_seeds.py reruns this script into a temporary directory and compares bytes, so
nothing below may depend on the clock, the locale or the machine.

Run: python seeds/build.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path

SEEDS_DIR = Path(__file__).resolve().parent

# Lines of the .txt files that are scraping artefacts, not article text.
VIDEO_FALLBACK = "Your browser doesn’t support HTML5"
DATELINE_RE = re.compile(r"^date (\d{4}-\d{2}-\d{2}) ")
# In 002 every paragraph from this one onwards is a photo caption with its credit.
CAPTION_START = "Damage is seen inside an apartment building"
CAPTION_CREDIT_RE = re.compile(r"\((AP Photo/[^)]+|[^)]+ via AP|AP Digital Embed)\)")
# Spelled out rather than strftime("%B"), whose month names follow the locale.
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class Outlet:
    """An outlet's identity and the invented chrome its pages are wrapped in."""

    slug: str
    name: str
    domain: str  # invented, on the reserved .example TLD
    feed_format: str  # "rss" or "atom"
    feed_title: str
    feed_description: str
    section: str
    byline: str
    nav: tuple[str, ...]
    related: tuple[str, ...]
    newsletter: str
    comments: str
    footer_note: str


@dataclass(frozen=True)
class Seed:
    """One seed article: which .txt, which outlet, when, and the headline we wrote for it."""

    stem: str
    outlet: Outlet
    published: datetime
    headline: str
    summary: str


AP = Outlet(
    slug="ap",
    name="Associated Press",
    domain="apnews.example",
    feed_format="rss",
    feed_title="AP News: World News",
    feed_description="Top world stories from the Associated Press.",
    section="World News",
    byline="By The Associated Press",
    nav=("U.S. News", "World News", "Politics", "Business", "Sports", "Entertainment", "Science"),
    related=(
        "Harvest festival returns to river towns after a rain-soaked summer",
        "Regulators weigh new labeling rules for plant-based milk",
        "Minor league ballpark to host community vaccination clinic",
        "Astronomers spot a faint ring around a distant dwarf planet",
        "Bakery chain recalls seeded rolls over allergen mix-up",
    ),
    newsletter="Start your day with AP Morning Wire: the top headlines, "
    "delivered to your inbox before breakfast.",
    comments="Reader comments are closed on this story. Read our community guidelines "
    "to learn when discussions are opened.",
    footer_note="Offline test copy with invented site chrome.",
)

RFERL = Outlet(
    slug="rferl",
    name="Radio Free Europe/Radio Liberty",
    domain="rferl.example",
    feed_format="atom",
    feed_title="RFE/RL: Caucasus",
    feed_description="News and analysis from the South Caucasus.",
    section="Caucasus",
    byline="By RFE/RL",
    nav=("Russia", "Ukraine", "Caucasus", "Central Asia", "Balkans", "Iran", "Podcasts"),
    related=(
        "Tram drivers in a regional capital strike over unpaid overtime",
        "Village choir keeps a centuries-old singing tradition alive",
        "Students protest a sudden rise in dormitory fees",
        "Mountain road reopens after a month of rockfall repairs",
        "Chess prodigy, 12, wins national junior title",
    ),
    newsletter="Sign up for The Week Ahead, our Sunday newsletter on the stories "
    "that will matter in the coming days.",
    comments="Show comments (14). Comments are moderated and may take a while to appear.",
    footer_note="Offline test copy with invented site chrome.",
)

LEVANT_WIRE = Outlet(
    slug="levant-wire",
    name="Levant Wire (English service)",
    domain="levantwire.example",
    feed_format="rss",
    feed_title="Levant Wire (English service): Latest",
    feed_description="Reports translated from the Levant Wire Arabic desk. "
    "Levant Wire is a fictional outlet used for testing.",
    section="International",
    byline="Levant Wire staff, translated from Arabic",
    nav=("Home", "Region", "International", "Economy", "Culture", "Sport", "Opinion"),
    related=(
        "Olive harvest begins early as growers race the autumn heat",
        "Port authority unveils a new ferry timetable for the winter",
        "Film festival opens with a restored classic from the 1960s",
        "Central bank keeps interest rates on hold for a third month",
        "Football: late goal sends the capital's club top of the table",
    ),
    newsletter="Get the Evening Digest: five stories worth your time, every weekday at 7pm.",
    comments="Be the first to comment. Log in or create an account to join the discussion.",
    footer_note="Levant Wire is a fictional outlet; this page is an offline test fixture.",
)

SEEDS: tuple[Seed, ...] = (
    Seed(
        stem="002_544d5ff0b48e60d1",
        outlet=AP,
        published=datetime(2020, 9, 30, 14, 32, tzinfo=UTC),
        headline="Armenia may recognize Nagorno-Karabakh as fighting with Azerbaijan rages on",
        summary="Armenia's prime minister raises the prospect of recognizing the separatist "
        "region's independence as Turkey denies sending jets and drones to back Azerbaijan.",
    ),
    Seed(
        stem="001_7f5d40a5f4979764",
        outlet=RFERL,
        published=datetime(2020, 10, 24, 16, 5, tzinfo=UTC),
        headline="Fighting Continues Around Nagorno-Karabakh A Day After Pompeo Meets "
        "Armenian, Azerbaijani Ministers",
        summary="Baku and Yerevan trade conflicting claims about the fighting after their "
        "foreign ministers held separate talks in Washington.",
    ),
    Seed(
        stem="000_81398aff7cddd8a7",
        outlet=LEVANT_WIRE,
        published=datetime(2020, 10, 24, 21, 40, tzinfo=UTC),
        headline="Armenia says dozens more soldiers killed in Karabakh as Azerbaijan downs a drone",
        summary="The separatist region's death toll rises to 963 soldiers while Turkey "
        "pledges continued support for Azerbaijan.",
    ),
)


# --- reading the seeds -------------------------------------------------------------------


def read_paragraphs(stem: str) -> list[str]:
    """Non-empty lines of a seed: 001 separates paragraphs by one newline, the others by two."""
    text = (SEEDS_DIR / f"{stem}.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.split("\n") if line.strip()]


def split_caption(paragraph: str) -> tuple[str, str]:
    """A scraped caption reads '<caption> (AP Photo/X) Credit: X Credit: X': keep one credit."""
    if not CAPTION_CREDIT_RE.search(paragraph):
        raise ValueError(f"caption without an AP credit: {paragraph[:60]!r}")
    caption, _, credits = paragraph.partition(" Credit: ")
    return caption, credits.split(" Credit: ")[0]


# --- pages ---------------------------------------------------------------------------------


def iso(dt: datetime) -> str:
    """RFC 3339 with a Z, the form both Atom and article:published_time expect."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def human_date(dt: datetime) -> str:
    """'October 24, 2020', as the visible dateline reads."""
    return f"{MONTHS[dt.month - 1]} {dt.day}, {dt.year}"


def page_path(seed: Seed) -> str:
    return f"pages/{seed.outlet.slug}/{seed.stem}.html"


def feed_path(outlet: Outlet) -> str:
    return f"feeds/{outlet.slug}.xml"


def body_html(seed: Seed, paragraphs: list[str]) -> tuple[str, str | None]:
    """The article body, plus the dateline for the header when the scrape carried one."""
    out: list[str] = []
    dateline: str | None = None
    figures = 0
    captions = False
    for para in paragraphs:
        match = DATELINE_RE.match(para)
        if match and not out:
            dateline = match.group(1)
            para = para[match.end() :]
        if para.startswith(CAPTION_START):
            captions = True
            out.append('<div class="photo-gallery" aria-label="Photos">')
        if captions:
            figures += 1
            out.append(figure_html(seed, figures, *split_caption(para)))
        elif para == VIDEO_FALLBACK:
            out.append(video_html(seed))
        else:
            out.append(f"<p>{escape(para, quote=False)}</p>")
    if captions:
        out.append("</div>")
    return "\n".join(out), dateline


def figure_html(seed: Seed, index: int, caption: str, credit: str) -> str:
    alt = re.split(r", |\. ", caption, maxsplit=1)[0]
    src = f"https://images.{seed.outlet.domain}/{seed.stem}/photo-{index:02d}.jpg"
    return (
        f'<figure class="photo">\n<img src="{src}" alt="{escape(alt)}" width="1200" '
        f'height="800" loading="lazy">\n<figcaption>{escape(caption, quote=False)} '
        f'<span class="credit">Credit: {escape(credit, quote=False)}</span></figcaption>\n'
        "</figure>"
    )


def video_html(seed: Seed) -> str:
    base = f"https://media.{seed.outlet.domain}/video/{seed.stem}"
    return (
        '<div class="media-embed">\n'
        f'<video controls preload="none" poster="{base}.jpg">\n'
        f'<source src="{base}-720p.mp4" type="video/mp4">\n'
        f"{escape(VIDEO_FALLBACK, quote=False)}\n</video>\n</div>"
    )


def json_ld(seed: Seed, canonical: str) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": seed.headline,
        "description": seed.summary,
        "datePublished": iso(seed.published),
        "dateModified": iso(seed.published),
        "mainEntityOfPage": canonical,
        "author": {"@type": "Organization", "name": seed.outlet.name},
        "publisher": {"@type": "Organization", "name": seed.outlet.name},
    }
    # "</" inside a script element would end it early.
    return json.dumps(data, ensure_ascii=False, indent=2).replace("</", "<\\/")


def nav_html(outlet: Outlet) -> str:
    items = "\n".join(
        f'<li><a href="/section/{slugify(label)}">{escape(label)}</a></li>' for label in outlet.nav
    )
    return f'<nav class="main-nav" aria-label="Sections">\n<ul>\n{items}\n</ul>\n</nav>'


def related_html(outlet: Outlet) -> str:
    items = "\n".join(
        f'<li><a href="/article/{slugify(title)}">{escape(title)}</a></li>'
        for title in outlet.related
    )
    return (
        '<aside class="related-stories" aria-labelledby="related-heading">\n'
        f'<h2 id="related-heading">Related stories</h2>\n<ul>\n{items}\n</ul>\n</aside>'
    )


def share_html(canonical: str) -> str:
    return (
        '<div class="share-tools" aria-label="Share this story">\n'
        f'<a class="share share-facebook" href="https://facebook.example/share?u={canonical}">'
        "Share on Facebook</a>\n"
        f'<a class="share share-x" href="https://x.example/intent?url={canonical}">'
        "Share on X</a>\n"
        f'<a class="share share-email" href="mailto:?subject=Worth%20reading&amp;body={canonical}">'
        "Email this story</a>\n"
        '<button class="share share-copy" type="button">Copy link</button>\n</div>'
    )


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render_page(seed: Seed) -> str:
    """A news page as a CMS would serve it: the article wrapped in everything but the article."""
    outlet = seed.outlet
    canonical = f"https://www.{outlet.domain}/article/{seed.stem}"
    body, dateline = body_html(seed, read_paragraphs(seed.stem))
    if dateline:
        day = datetime.strptime(dateline, "%Y-%m-%d")
        time_el = f'<time class="dateline" datetime="{dateline}">{human_date(day)}</time>'
    else:
        time_el = f'<time datetime="{iso(seed.published)}">{human_date(seed.published)}</time>'
    headline = escape(seed.headline)
    summary = escape(seed.summary)
    year = seed.published.year
    return f"""<!doctype html>
<!-- Offline seed fixture generated by seeds/build.py; the site chrome is invented. -->
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{headline} | {escape(outlet.name)}</title>
<meta name="description" content="{summary}">
<meta property="og:type" content="article">
<meta property="og:site_name" content="{escape(outlet.name)}">
<meta property="og:title" content="{headline}">
<meta property="og:description" content="{summary}">
<meta property="og:url" content="{canonical}">
<meta property="article:published_time" content="{iso(seed.published)}">
<meta property="article:section" content="{escape(outlet.section)}">
<link rel="canonical" href="{canonical}">
<link rel="stylesheet" href="/static/css/site.css">
<script>
window.dataLayer = window.dataLayer || [];
function gtag() {{ dataLayer.push(arguments); }}
gtag("js", new Date());
gtag("config", "G-SEEDFIXTURE", {{ content_group: "{escape(outlet.section)}" }});
</script>
<script type="application/ld+json">
{json_ld(seed, canonical)}
</script>
</head>
<body class="page-article">
<a class="skip-link" href="#main">Skip to main content</a>
<div id="cookie-consent" class="cookie-banner" role="dialog" aria-label="Cookie consent">
<p>We use cookies to keep this site working, to measure how it is used and to show you \
relevant ads. Choose &ldquo;Accept all&rdquo; to agree or manage your preferences at any time.</p>
<button type="button" class="cookie-accept">Accept all</button>
<button type="button" class="cookie-settings">Manage preferences</button>
</div>
<header class="site-header">
<a class="site-logo" href="/">{escape(outlet.name)}</a>
{nav_html(outlet)}
<form class="site-search" role="search" action="/search">
<input type="search" name="q" placeholder="Search {escape(outlet.name)}">
<button type="submit">Search</button>
</form>
</header>
<main id="main">
<article class="article">
<header class="article-header">
<p class="kicker"><a href="/section/{slugify(outlet.section)}">{escape(outlet.section)}</a></p>
<h1>{headline}</h1>
<p class="byline">{escape(outlet.byline)}</p>
<p class="timestamp">Published {time_el}</p>
{share_html(canonical)}
</header>
<div class="article-body">
{body}
</div>
</article>
<aside class="newsletter-signup">
<h2>Newsletter</h2>
<p>{escape(outlet.newsletter)}</p>
<form action="/newsletter/subscribe" method="post">
<input type="email" name="email" placeholder="Your email address">
<button type="submit">Subscribe</button>
</form>
</aside>
<section class="comments-teaser" id="comments">
<h2>Comments</h2>
<p>{escape(outlet.comments)}</p>
</section>
{related_html(outlet)}
</main>
<footer class="site-footer">
<ul class="footer-links">
<li><a href="/about">About us</a></li>
<li><a href="/contact">Contact</a></li>
<li><a href="/privacy">Privacy policy</a></li>
<li><a href="/terms">Terms of use</a></li>
<li><a href="/advertise">Advertise with us</a></li>
</ul>
<p class="copyright">&copy; {year} {escape(outlet.name)}. All rights reserved. \
{escape(outlet.footer_note)}</p>
</footer>
<script src="/static/js/consent.js" defer></script>
<script>
(function () {{
  var ping = new Image();
  ping.src = "/pixel.gif?page=" + encodeURIComponent(location.pathname);
}})();
</script>
</body>
</html>
"""


# --- feeds ---------------------------------------------------------------------------------


def item_link(seed: Seed) -> str:
    """Relative to the feed file, so the same tree works over file:// and over HTTP."""
    return f"../{page_path(seed)}"


def item_id(seed: Seed) -> str:
    return f"tag:{seed.outlet.domain},{seed.published:%Y-%m-%d}:{seed.stem}"


def render_rss(outlet: Outlet, seeds: list[Seed]) -> str:
    latest = max(seed.published for seed in seeds)
    items = "\n".join(
        f"""<item>
<title>{escape(seed.headline, quote=False)}</title>
<link>{item_link(seed)}</link>
<guid isPermaLink="false">{item_id(seed)}</guid>
<pubDate>{format_datetime(seed.published, usegmt=True)}</pubDate>
<category>{escape(outlet.section, quote=False)}</category>
<description>{escape(seed.summary, quote=False)}</description>
</item>"""
        for seed in seeds
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0">
<channel>
<title>{escape(outlet.feed_title, quote=False)}</title>
<link>https://www.{outlet.domain}/section/{slugify(outlet.section)}</link>
<description>{escape(outlet.feed_description, quote=False)}</description>
<language>en</language>
<lastBuildDate>{format_datetime(latest, usegmt=True)}</lastBuildDate>
<ttl>15</ttl>
{items}
</channel>
</rss>
"""


def render_atom(outlet: Outlet, seeds: list[Seed]) -> str:
    latest = max(seed.published for seed in seeds)
    entries = "\n".join(
        f"""<entry>
<title>{escape(seed.headline, quote=False)}</title>
<id>{item_id(seed)}</id>
<link rel="alternate" type="text/html" href="{item_link(seed)}"/>
<published>{iso(seed.published)}</published>
<updated>{iso(seed.published)}</updated>
<category term="{escape(outlet.section)}"/>
<summary>{escape(seed.summary, quote=False)}</summary>
</entry>"""
        for seed in seeds
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
<title>{escape(outlet.feed_title, quote=False)}</title>
<subtitle>{escape(outlet.feed_description, quote=False)}</subtitle>
<id>tag:{outlet.domain},2020:feeds/{outlet.slug}</id>
<link rel="self" type="application/atom+xml" href="{outlet.slug}.xml"/>
<link rel="alternate" type="text/html" href="https://www.{outlet.domain}/section/\
{slugify(outlet.section)}"/>
<updated>{iso(latest)}</updated>
<author><name>{escape(outlet.name, quote=False)}</name></author>
{entries}
</feed>
"""


# --- driver --------------------------------------------------------------------------------


def outlets() -> Iterator[Outlet]:
    """Each outlet once, in SEEDS order."""
    seen: set[str] = set()
    for seed in SEEDS:
        if seed.outlet.slug not in seen:
            seen.add(seed.outlet.slug)
            yield seed.outlet


def render_all() -> Iterable[tuple[str, str]]:
    """(relative path, content) for every generated file."""
    for outlet in outlets():
        mine = [seed for seed in SEEDS if seed.outlet is outlet]
        render = render_atom if outlet.feed_format == "atom" else render_rss
        yield feed_path(outlet), render(outlet, mine)
    for seed in SEEDS:
        yield page_path(seed), render_page(seed)


def build(out: Path) -> list[Path]:
    """Write every file under out; bytes, so the platform never rewrites line ends."""
    written: list[Path] = []
    for rel, content in render_all():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8"))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SEEDS_DIR, help="output root (default: seeds/)")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
