"""Deterministic sample databases for `dumpdeck demo`: they look real and load in seconds.

Every row is generated on the server by `INSERT ... SELECT` from MariaDB's SEQUENCE
engine (`seq_1_to_N`); every "random" value is a CRC32 of the row number and a salt,
so two loads give identical tables (CHECKSUM TABLE equal) and no Python-side rows
cross the wire. `catalog()` describes what a load creates, with exact row counts
(computed here with zlib.crc32, which is the same function as SQL CRC32), so tests
can compare the server against it.

Databases:
  shop           customers, products, orders, order_items (foreign keys), a view,
                 a procedure, a function, a trigger
  blog           authors, posts (FULLTEXT index, utf8mb4 text with emoji), comments,
                 an event
  legacy_crm     small MyISAM tables in latin1 (so the consistency warning shows)
  sales archive  a database whose name contains a space (and a table whose name does)
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pymysql.connections

from dumpdeck.backend.mysql import quote_ident

DATA_VERSION = 1
EPOCH = "2022-01-01 00:00:00"

# Base sizes (scale 1.0). Everything else is derived from these.
SIZES = {
    "customers": 20_000,
    "products": 2_000,
    "orders": 60_000,
    "authors": 40,
    "posts": 6_000,
    "comments": 40_000,
    "companies": 300,
    "contacts": 2_500,
    "calls": 8_000,
    "invoices": 25_000,
}


@dataclass(frozen=True)
class SampleTable:
    name: str
    engine: str
    rows: int


@dataclass(frozen=True)
class SampleDatabase:
    name: str
    tables: tuple[SampleTable, ...]
    views: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    fulltext: tuple[tuple[str, str], ...] = ()  # (table, index name)
    foreign_keys: tuple[str, ...] = ()  # constraint names

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


@dataclass(frozen=True)
class LoadReport:
    databases: tuple[str, ...]
    rows: int
    seconds: float
    per_database: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- word lists

FIRST = [  # (display, ascii for e-mail addresses)
    ("Anna", "anna"),
    ("Zoë", "zoe"),
    ("Łukasz", "lukasz"),
    ("José", "jose"),
    ("Søren", "soren"),
    ("Ngozi", "ngozi"),
    ("Aoife", "aoife"),
    ("Mateo", "mateo"),
    ("Yuki", "yuki"),
    ("Ольга", "olga"),
    ("Priya", "priya"),
    ("Liam", "liam"),
    ("Fatima", "fatima"),
    ("Chen", "chen"),
    ("Émile", "emile"),
    ("Hannah", "hannah"),
    ("Kwame", "kwame"),
    ("Ingrid", "ingrid"),
    ("Diego", "diego"),
    ("Sara", "sara"),
    ("Oliver", "oliver"),
    ("Amélie", "amelie"),
    ("Tomás", "tomas"),
    ("Leila", "leila"),
]
LAST = [
    ("Smith", "smith"),
    ("O'Brien", "obrien"),
    ("Müller", "mueller"),
    ("García", "garcia"),
    ("Nowak", "nowak"),
    ("Rossi", "rossi"),
    ("Kowalski", "kowalski"),
    ("Tanaka", "tanaka"),
    ("Okafor", "okafor"),
    ("Dubois", "dubois"),
    ("Jensen", "jensen"),
    ("Silva", "silva"),
    ("Novák", "novak"),
    ("Petrov", "petrov"),
    ("Kim", "kim"),
    ("Haddad", "haddad"),
    ("Murphy", "murphy"),
    ("van Dijk", "vandijk"),
    ("Schäfer", "schaefer"),
    ("Costa", "costa"),
]
CITIES = [
    ("Berlin", "DE"),
    ("München", "DE"),
    ("Paris", "FR"),
    ("Lyon", "FR"),
    ("Kraków", "PL"),
    ("Warszawa", "PL"),
    ("Lisboa", "PT"),
    ("Porto", "PT"),
    ("Dublin", "IE"),
    ("Cork", "IE"),
    ("Madrid", "ES"),
    ("Sevilla", "ES"),
    ("Milano", "IT"),
    ("Roma", "IT"),
    ("København", "DK"),
    ("Aarhus", "DK"),
    ("Lagos", "NG"),
    ("Tokyo", "JP"),
    ("Osaka", "JP"),
    ("Toronto", "CA"),
    ("Montréal", "CA"),
    ("Austin", "US"),
    ("Boston", "US"),
    ("São Paulo", "BR"),
]
TLDS = ["com", "org", "net", "de", "fr", "io"]
ADJECTIVES = [
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Ergonomic",
    "Handmade",
    "Heavy-duty",
    "Mini",
    "Organic",
    "Portable",
    "Premium",
    "Rustic",
    "Smart",
    "Vintage",
    "Wireless",
]
MATERIALS = ["Bamboo", "Cotton", "Steel", "Oak", "Ceramic", "Linen", "Aluminium", "Glass", "Wool", "Leather"]
NOUNS = [  # (noun, category)
    ("Lamp", "Home"),
    ("Chair", "Furniture"),
    ("Desk", "Furniture"),
    ("Mug", "Kitchen"),
    ("Kettle", "Kitchen"),
    ("Backpack", "Outdoor"),
    ("Tent", "Outdoor"),
    ("Headphones", "Electronics"),
    ("Keyboard", "Electronics"),
    ("Notebook", "Office"),
    ("Pen", "Office"),
    ("Scarf", "Fashion"),
    ("Sneakers", "Fashion"),
    ("Yoga Mat", "Sport"),
    ("Bottle", "Sport"),
    ("Blanket", "Home"),
]
STATUSES = ["delivered"] * 7 + ["shipped"] * 2 + ["paid", "new", "cancelled", "refunded"]
TITLE_START = [
    "Why",
    "How",
    "Ten things about",
    "A gentle guide to",
    "Notes on",
    "Lessons from",
    "What I learned about",
    "Rethinking",
    "The case for",
    "Debugging",
]
TOPICS = [
    "backups 💾",
    "MariaDB replication",
    "sourdough 🍞",
    "remote work",
    "Rust and Python 🐍",
    "cycling in the rain 🚲",
    "observability",
    "kitchen gardens 🌱",
    "index design",
    "coffee ☕",
    "Unicode — ünïcödé",
    "on-call 📟",
    "数据库",
    "travel ✈️",
    "Ελληνικά",
]
PHRASES = [
    "It started as a small experiment.",
    "Nobody expected the results to be this clear.",
    "We measured everything twice.",
    "Here is the short version 🧵.",
    "The long version follows.",
    "Spoiler: it was DNS.",
    "Restores are the only backups that count ✅.",
    "Naïve approaches work surprisingly often.",
    "Ça dépend, as always.",
    "Das Ergebnis war eindeutig.",
    "これは面白い。",
    "Мы попробовали ещё раз.",
    "The graph went up and to the right 📈.",
    "Then the pager went off at 03:00 😴.",
    "Lesson learned: write it down.",
    "Read the manual — twice.",
    "We rolled back within minutes.",
    "Users never noticed 🎉.",
]
COMMENTS = [
    "Great post! 👍",
    "I disagree, but thanks for writing this.",
    "Did you try turning it off and on?",
    "Merci beaucoup !",
    "This saved my weekend 🙏",
    "Source?",
    "Danke für den Beitrag.",
    "We hit the same bug last year.",
    "🔥🔥🔥",
    "Can you share the config?",
    "Bookmarked.",
    "BUY CHEAP WATCHES http://spam.example",
    "Very helpful, especially the part about restores.",
]
AUTHORS = [
    "Ada Byrne",
    "Bashir Rahimi",
    "Chloé Martin",
    "Dmitri Ivanov",
    "Elif Yılmaz",
    "Femi Adeyemi",
    "Grete Larsen",
    "Hiro Sato",
    "Isla MacLeod",
    "Jonas Weber",
]
LATIN1_NAMES = [
    "Müller GmbH",
    "Dupont SARL",
    "Nørgaard A/S",
    "Acme Corp",
    "Peña & Hijos",
    "Svensson AB",
    "Rossi S.p.A.",
    "O'Neill Ltd",
    "Björk Design",
    "Hernández y Cía",
]
REGIONS = [
    ("NORTH", "North"),
    ("SOUTH", "South"),
    ("EAST", "East"),
    ("WEST", "West"),
    ("CENTRAL", "Central"),
    ("ALPINE", "Alpine"),
    ("COAST", "Coast"),
    ("ISLANDS", "Islands"),
    ("METRO", "Metro"),
    ("RURAL", "Rural"),
    ("EXPORT", "Export"),
    ("ONLINE", "Online"),
]


def _lit(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _h(salt: str, key: str = "seq") -> str:
    """A deterministic pseudo-random 32-bit number for the row: CRC32('salt' || key)."""
    return f"CRC32(CONCAT('{salt}', {key}))"


def _pick(items: list[str], salt: str, key: str = "seq") -> str:
    return f"ELT(1 + {_h(salt, key)} % {len(items)}, {', '.join(_lit(i) for i in items)})"


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _scaled(name: str, scale: float) -> int:
    return max(1, int(SIZES[name] * scale))


def order_item_count(orders: int) -> int:
    """Rows of shop.order_items: 1..4 lines per order, as the load generates them."""
    return sum(1 + _crc(f"n{i}") % 4 for i in range(1, orders + 1))


# --------------------------------------------------------------------------- catalog


def catalog(scale: float = 1.0) -> tuple[SampleDatabase, ...]:
    """What `load()` creates, with exact row counts."""
    n = {k: _scaled(k, scale) for k in SIZES}
    return (
        SampleDatabase(
            "shop",
            tables=(
                SampleTable("customers", "InnoDB", n["customers"]),
                SampleTable("products", "InnoDB", n["products"]),
                SampleTable("orders", "InnoDB", n["orders"]),
                SampleTable("order_items", "InnoDB", order_item_count(n["orders"])),
            ),
            views=("customer_lifetime_value",),
            procedures=("top_customers",),
            functions=("order_count",),
            triggers=("order_items_after_insert",),
            foreign_keys=("fk_orders_customer", "fk_items_order", "fk_items_product"),
        ),
        SampleDatabase(
            "blog",
            tables=(
                SampleTable("authors", "InnoDB", n["authors"]),
                SampleTable("posts", "InnoDB", n["posts"]),
                SampleTable("comments", "InnoDB", n["comments"]),
            ),
            views=("published_posts",),
            events=("purge_spam",),
            fulltext=(("posts", "ft_posts"),),
            foreign_keys=("fk_posts_author", "fk_comments_post"),
        ),
        SampleDatabase(
            "legacy_crm",
            tables=(
                SampleTable("companies", "MyISAM", n["companies"]),
                SampleTable("contacts", "MyISAM", n["contacts"]),
                SampleTable("calls", "MyISAM", n["calls"]),
            ),
        ),
        SampleDatabase(
            "sales archive",
            tables=(
                SampleTable("regions", "InnoDB", len(REGIONS)),
                SampleTable("invoices", "InnoDB", n["invoices"]),
                SampleTable("yearly targets", "InnoDB", len(REGIONS) * 4),
            ),
            views=("revenue_by_year",),
            foreign_keys=("fk_invoices_region", "fk_targets_region"),
        ),
    )


DATABASES: tuple[str, ...] = tuple(db.name for db in catalog(0.001))


# --------------------------------------------------------------------------- SQL


def _shop(n: dict[str, int]) -> list[str]:
    first_i = f"1 + {_h('f')} % {len(FIRST)}"
    last_i = f"1 + {_h('l')} % {len(LAST)}"
    city_i = f"1 + {_h('c')} % {len(CITIES)}"
    noun_i = f"1 + {_h('pn')} % {len(NOUNS)}"

    def elt(index: str, items: list[str]) -> str:
        return f"ELT({index}, {', '.join(_lit(i) for i in items)})"

    item_key = "CONCAT(o.seq, '.', l.seq)"
    return [
        """CREATE TABLE customers (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            email VARCHAR(190) NOT NULL,
            first_name VARCHAR(60) NOT NULL,
            last_name VARCHAR(60) NOT NULL,
            city VARCHAR(80) NOT NULL,
            country CHAR(2) NOT NULL,
            created_at DATETIME NOT NULL,
            UNIQUE KEY uq_customers_email (email),
            KEY ix_customers_country_city (country, city)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='shop customers'""",
        """CREATE TABLE products (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            sku VARCHAR(20) NOT NULL,
            name VARCHAR(120) NOT NULL,
            category VARCHAR(40) NOT NULL,
            price DECIMAL(10,2) NOT NULL,
            stock INT NOT NULL,
            UNIQUE KEY uq_products_sku (sku),
            KEY ix_products_category (category)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE orders (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            customer_id INT UNSIGNED NOT NULL,
            status ENUM('new','paid','shipped','delivered','cancelled','refunded') NOT NULL,
            ordered_at DATETIME NOT NULL,
            total DECIMAL(12,2) NOT NULL DEFAULT 0,
            KEY ix_orders_ordered_at (ordered_at),
            CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE order_items (
            order_id INT UNSIGNED NOT NULL,
            line_no TINYINT UNSIGNED NOT NULL,
            product_id INT UNSIGNED NOT NULL,
            quantity SMALLINT UNSIGNED NOT NULL,
            unit_price DECIMAL(10,2) NOT NULL,
            PRIMARY KEY (order_id, line_no),
            KEY ix_items_product (product_id),
            CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
            CONSTRAINT fk_items_product FOREIGN KEY (product_id) REFERENCES products (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        f"""INSERT INTO customers (id, email, first_name, last_name, city, country, created_at)
            SELECT seq,
                   CONCAT({elt(first_i, [a for _, a in FIRST])}, '.', {elt(last_i, [a for _, a in LAST])}, seq,
                          '@example.', {_pick(TLDS, "t")}),
                   {elt(first_i, [d for d, _ in FIRST])}, {elt(last_i, [d for d, _ in LAST])},
                   {elt(city_i, [c for c, _ in CITIES])}, {elt(city_i, [k for _, k in CITIES])},
                   TIMESTAMP('{EPOCH}') - INTERVAL 400 DAY + INTERVAL (seq * 1500 + {_h("cd")} % 1400) SECOND
            FROM seq_1_to_{n["customers"]}""",
        f"""INSERT INTO products (id, sku, name, category, price, stock)
            SELECT seq, CONCAT('SKU-', LPAD(seq, 6, '0')),
                   CONCAT({_pick(ADJECTIVES, "pa")}, ' ', {_pick(MATERIALS, "pm")}, ' ',
                          {elt(noun_i, [x for x, _ in NOUNS])}),
                   {elt(noun_i, [c for _, c in NOUNS])},
                   ROUND(2 + ({_h("pp")} % 49800) / 100, 2),
                   {_h("ps")} % 500
            FROM seq_1_to_{n["products"]}""",
        f"""INSERT INTO orders (id, customer_id, status, ordered_at, total)
            SELECT seq, 1 + {_h("oc")} % {n["customers"]}, {_pick(STATUSES, "os")},
                   TIMESTAMP('{EPOCH}')
                     + INTERVAL (seq * {max(1, 94_000_000 // n["orders"])} + {_h("od")} % 1500) SECOND,
                   0
            FROM seq_1_to_{n["orders"]}""",
        f"""INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
            SELECT o.seq, l.seq, p.id, 1 + {_h("q", item_key)} % 4, p.price
            FROM seq_1_to_{n["orders"]} o
            JOIN seq_1_to_4 l ON l.seq <= 1 + {_h("n", "o.seq")} % 4
            JOIN products p ON p.id = 1 + {_h("p", item_key)} % {n["products"]}""",
        """UPDATE orders o
            JOIN (SELECT order_id, SUM(quantity * unit_price) AS s FROM order_items GROUP BY order_id) t
              ON t.order_id = o.id
            SET o.total = t.s""",
        """CREATE VIEW customer_lifetime_value AS
            SELECT c.id AS customer_id, c.email, COUNT(o.id) AS orders, COALESCE(SUM(o.total), 0) AS lifetime_value
            FROM customers c
            LEFT JOIN orders o ON o.customer_id = c.id AND o.status NOT IN ('cancelled', 'refunded')
            GROUP BY c.id, c.email""",
        """CREATE PROCEDURE top_customers(IN how_many INT)
            READS SQL DATA
            COMMENT 'the best customers by lifetime value'
            SELECT customer_id, email, orders, lifetime_value
            FROM customer_lifetime_value ORDER BY lifetime_value DESC, customer_id LIMIT how_many""",
        """CREATE FUNCTION order_count(customer INT UNSIGNED) RETURNS INT
            READS SQL DATA
            RETURN (SELECT COUNT(*) FROM orders WHERE customer_id = customer)""",
        """CREATE TRIGGER order_items_after_insert AFTER INSERT ON order_items FOR EACH ROW
            UPDATE orders SET total = total + NEW.quantity * NEW.unit_price WHERE id = NEW.order_id""",
    ]


def _blog(n: dict[str, int]) -> list[str]:
    body = "CONCAT_WS(' ', " + ", ".join(_pick(PHRASES, f"b{i}") for i in range(8)) + ")"
    return [
        """CREATE TABLE authors (
            id SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
            name VARCHAR(80) NOT NULL,
            bio TEXT
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE posts (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            author_id SMALLINT UNSIGNED NOT NULL,
            title VARCHAR(200) NOT NULL,
            slug VARCHAR(200) NOT NULL,
            body MEDIUMTEXT NOT NULL,
            status ENUM('draft','published') NOT NULL,
            published_at DATETIME NULL,
            UNIQUE KEY uq_posts_slug (slug),
            CONSTRAINT fk_posts_author FOREIGN KEY (author_id) REFERENCES authors (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        """CREATE TABLE comments (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            post_id INT UNSIGNED NOT NULL,
            author_name VARCHAR(80) NOT NULL,
            body TEXT NOT NULL,
            is_spam TINYINT(1) NOT NULL DEFAULT 0,
            created_at DATETIME NOT NULL,
            KEY ix_comments_post_created (post_id, created_at),
            CONSTRAINT fk_comments_post FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE CASCADE
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        f"""INSERT INTO authors (id, name, bio)
            SELECT seq, CONCAT({_pick(AUTHORS, "an")}, ' ', seq),
                   CONCAT('Writes about ', {_pick(TOPICS, "at")}, ' and ', {_pick(TOPICS, "at2")}, '.')
            FROM seq_1_to_{n["authors"]}""",
        f"""INSERT INTO posts (id, author_id, title, slug, body, status, published_at)
            SELECT seq, 1 + {_h("pa")} % {n["authors"]},
                   CONCAT({_pick(TITLE_START, "ts")}, ' ', {_pick(TOPICS, "tp")}),
                   CONCAT('post-', seq),
                   CONCAT({body}, '\\n\\n', {body}),
                   IF({_h("st")} % 10 = 0, 'draft', 'published'),
                   IF({_h("st")} % 10 = 0, NULL,
                      TIMESTAMP('{EPOCH}') + INTERVAL (seq * {max(1, 94_000_000 // n["posts"])}) SECOND)
            FROM seq_1_to_{n["posts"]}""",
        f"""INSERT INTO comments (id, post_id, author_name, body, is_spam, created_at)
            SELECT seq, 1 + {_h("cp")} % {n["posts"]},
                   {_pick([f for f, _ in FIRST], "ca")},
                   {_pick(COMMENTS, "cb")},
                   {_h("cb")} % {len(COMMENTS)} = {COMMENTS.index("BUY CHEAP WATCHES http://spam.example")},
                   TIMESTAMP('{EPOCH}')
                     + INTERVAL (seq * {max(1, 94_000_000 // n["comments"])} + {_h("cd")} % 900) SECOND
            FROM seq_1_to_{n["comments"]}""",
        "ALTER TABLE posts ADD FULLTEXT KEY ft_posts (title, body)",
        """CREATE VIEW published_posts AS
            SELECT p.id, p.title, a.name AS author, p.published_at
            FROM posts p JOIN authors a ON a.id = p.author_id
            WHERE p.status = 'published'""",
        # Disabled, so a restored copy stays identical to the original whatever the
        # target's event_scheduler says.
        """CREATE EVENT purge_spam
            ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 03:00:00'
            ON COMPLETION PRESERVE DISABLE
            COMMENT 'delete spam comments older than 30 days'
            DO DELETE FROM comments WHERE is_spam = 1 AND created_at < NOW() - INTERVAL 30 DAY""",
    ]


def _legacy_crm(n: dict[str, int]) -> list[str]:
    return [
        """CREATE TABLE companies (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            name VARCHAR(100) NOT NULL,
            phone VARCHAR(30),
            created DATE
        ) ENGINE=MyISAM DEFAULT CHARSET=latin1""",
        """CREATE TABLE contacts (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            company_id INT NOT NULL,
            name VARCHAR(100) NOT NULL,
            email VARCHAR(120),
            KEY company_id (company_id)
        ) ENGINE=MyISAM DEFAULT CHARSET=latin1""",
        """CREATE TABLE calls (
            id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            contact_id INT NOT NULL,
            called_at DATETIME NOT NULL,
            minutes SMALLINT NOT NULL,
            note VARCHAR(255),
            KEY contact_id (contact_id)
        ) ENGINE=MyISAM DEFAULT CHARSET=latin1""",
        f"""INSERT INTO companies (id, name, phone, created)
            SELECT seq, CONCAT({_pick(LATIN1_NAMES, "cn")}, ' #', seq),
                   CONCAT('+49 30 ', LPAD({_h("ph")} % 10000000, 7, '0')),
                   DATE('2009-01-01') + INTERVAL ({_h("cc")} % 3000) DAY
            FROM seq_1_to_{n["companies"]}""",
        f"""INSERT INTO contacts (id, company_id, name, email)
            SELECT seq, 1 + {_h("kc")} % {n["companies"]},
                   CONCAT({_pick(["Jürgen", "Anaïs", "Søren", "José", "Mary", "Björn", "Zoë", "Kurt"], "kf")}, ' ',
                          {_pick(["Weiß", "Lefèvre", "Ødegaard", "Muñoz", "Smith", "Ångström"], "kl")}),
                   CONCAT('contact', seq, '@crm.example')
            FROM seq_1_to_{n["contacts"]}""",
        f"""INSERT INTO calls (id, contact_id, called_at, minutes, note)
            SELECT seq, 1 + {_h("lc")} % {n["contacts"]},
                   TIMESTAMP('2010-01-01') + INTERVAL (seq * 30000 + {_h("lt")} % 20000) SECOND,
                   1 + {_h("lm")} % 45,
                   {
            _pick(
                [
                    "follow up next week",
                    "sent quote",
                    "no answer",
                    "wants a demo",
                    "renewal due",
                    "complained about invoice",
                    "très content",
                    "",
                ],
                "ln",
            )
        }
            FROM seq_1_to_{n["calls"]}""",
    ]


def _sales_archive(n: dict[str, int]) -> list[str]:
    codes = [c for c, _ in REGIONS]
    names = [x for _, x in REGIONS]
    return [
        """CREATE TABLE regions (
            id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
            code VARCHAR(10) NOT NULL UNIQUE,
            name VARCHAR(40) NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE invoices (
            id INT UNSIGNED NOT NULL PRIMARY KEY,
            region_id TINYINT UNSIGNED NOT NULL,
            invoice_no VARCHAR(20) NOT NULL,
            issued DATE NOT NULL,
            amount DECIMAL(12,2) NOT NULL,
            currency CHAR(3) NOT NULL,
            paid TINYINT(1) NOT NULL,
            UNIQUE KEY uq_invoice_no (invoice_no),
            KEY ix_invoices_issued (issued),
            CONSTRAINT fk_invoices_region FOREIGN KEY (region_id) REFERENCES regions (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        """CREATE TABLE `yearly targets` (
            region_id TINYINT UNSIGNED NOT NULL,
            `year` SMALLINT NOT NULL,
            target DECIMAL(14,2) NOT NULL,
            PRIMARY KEY (region_id, `year`),
            CONSTRAINT fk_targets_region FOREIGN KEY (region_id) REFERENCES regions (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        f"""INSERT INTO regions (id, code, name)
            SELECT seq, ELT(seq, {", ".join(_lit(c) for c in codes)}), ELT(seq, {", ".join(_lit(x) for x in names)})
            FROM seq_1_to_{len(REGIONS)}""",
        f"""INSERT INTO invoices (id, region_id, invoice_no, issued, amount, currency, paid)
            SELECT seq, 1 + {_h("ir")} % {len(REGIONS)}, CONCAT('INV-', LPAD(seq, 7, '0')),
                   DATE('2015-01-01') + INTERVAL (seq * 1460 DIV {n["invoices"]}) DAY,
                   ROUND(50 + ({_h("ia")} % 2000000) / 100, 2),
                   {_pick(["EUR", "EUR", "EUR", "USD", "GBP", "CHF"], "ic")},
                   {_h("ip")} % 20 <> 0
            FROM seq_1_to_{n["invoices"]}""",
        f"""INSERT INTO `yearly targets` (region_id, `year`, target)
            SELECT r.seq, y.seq, 100000 + ({_h("yt", "CONCAT(r.seq, '.', y.seq)")} % 900000)
            FROM seq_1_to_{len(REGIONS)} r JOIN seq_2015_to_2018 y""",
        """CREATE VIEW revenue_by_year AS
            SELECT YEAR(i.issued) AS `year`, r.name AS region, SUM(i.amount) AS revenue, COUNT(*) AS invoices
            FROM invoices i JOIN regions r ON r.id = i.region_id
            GROUP BY YEAR(i.issued), r.name""",
    ]


_BUILDERS: dict[str, Callable[[dict[str, int]], list[str]]] = {
    "shop": _shop,
    "blog": _blog,
    "legacy_crm": _legacy_crm,
    "sales archive": _sales_archive,
}


def statements(database: str, scale: float = 1.0) -> list[str]:
    """The SQL that creates and fills one sample database (run with that database selected)."""
    return _BUILDERS[database]({k: _scaled(k, scale) for k in SIZES})


def load_database(conn: pymysql.connections.Connection, database: str, scale: float = 1.0) -> float:
    """(Re)create one sample database on `conn` (a PyMySQL connection); returns seconds taken."""
    if database not in _BUILDERS:
        raise ValueError(f"no sample database named {database!r}; known: {', '.join(DATABASES)}")
    t0 = time.monotonic()
    q = quote_ident(database)
    with conn.cursor() as cur:
        # Not replicated, not re-checked row by row: the generator is consistent by construction.
        cur.execute("SET SESSION sql_log_bin = 0, foreign_key_checks = 0, unique_checks = 0")
        # The statements rely on backslash escapes in literals; pin the mode they were written for.
        cur.execute("SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'")
        cur.execute(f"DROP DATABASE IF EXISTS {q}")
        cur.execute(f"CREATE DATABASE {q} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        cur.execute(f"USE {q}")
        for sql in statements(database, scale):
            cur.execute(sql)
        cur.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
    conn.commit()
    return time.monotonic() - t0


def load(
    connect: Callable[[], pymysql.connections.Connection],
    databases: tuple[str, ...] | list[str] | None = None,
    scale: float = 1.0,
    parallel: int = 2,
    on_loaded: Callable[[str, float], None] | None = None,
) -> LoadReport:
    """Load sample databases, `parallel` at a time, each on its own connection from `connect()`."""
    import concurrent.futures

    names = tuple(databases) if databases is not None else DATABASES
    t0 = time.monotonic()
    per: dict[str, float] = {}

    def one(name: str) -> float:
        conn = connect()
        try:
            return load_database(conn, name, scale)
        finally:
            conn.close()

    sizes = {db.name: db.rows for db in catalog(scale)}
    unknown = [d for d in names if d not in sizes]
    if unknown:
        raise ValueError(f"no sample database named {unknown[0]!r}; known: {', '.join(DATABASES)}")
    # Biggest first, so the parallel lanes finish together.
    order = sorted(names, key=lambda d: -sizes[d])
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="sample-load")
    try:
        futures = {pool.submit(one, name): name for name in order}
        for fut in concurrent.futures.as_completed(futures):
            name = futures[fut]
            per[name] = fut.result()
            if on_loaded is not None:
                on_loaded(name, per[name])
    except BaseException:
        # Ctrl-C or a failed load: do not wait for the other lanes; the caller stops the
        # server, which ends their queries.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    rows = sum(sizes[d] for d in names)
    return LoadReport(databases=names, rows=rows, seconds=time.monotonic() - t0, per_database=per)
