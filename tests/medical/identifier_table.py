"""A seeded table of identifiers made with Faker (tests only), beside ordinary clinical columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

# column -> the identifier type the scan must report for it
EXPECTED = {
    "full_name": "name", "first_name": "name", "surname": "name", "contact": "email",
    "tel": "phone", "ssn": "ssn", "nhs_no": "other_id", "iban": "other_id", "card": "other_id",
    "mrn": "mrn", "ref": "other_id", "zip": "zip", "dob": "birth_date", "admitted": "date",
    "age": "age", "note": "free_text", "homepage": "url", "ip": "ip",
}
CLEAN = ("sex", "creatinine", "stage", "kappa", "smoker")


def nhs_number(rng: np.random.Generator) -> str:
    """A random NHS number with a valid mod-11 check digit."""
    while True:
        digits = [int(d) for d in rng.integers(0, 10, 9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1))) % 11
        check = 0 if check == 11 else check
        if check != 10:
            s = "".join(map(str, digits)) + str(check)
            return f"{s[:3]} {s[3:6]} {s[6:]}"


def identifier_table(n: int = 120, seed: int = 11) -> pd.DataFrame:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    age = rng.integers(20, 89, n)
    age[:14] = rng.integers(90, 102, 14)                  # ages 90-101
    zips = [fake.zipcode() for _ in range(n)]
    zips[:20] = [f"0{rng.integers(1000, 9999)}" for _ in range(20)]   # leading zeros
    zips[20:24] = ["03601", "05902", "89012", "69201"]    # restricted ZIP3 areas -> 000
    admitted = [fake.date_between_dates(pd.Timestamp("2017-01-01").date(),
                                        pd.Timestamp("2019-12-31").date()) for _ in range(n)]
    dob = [fake.date_of_birth(minimum_age=20, maximum_age=88).isoformat() for _ in range(n)]
    dob[:6] = [f"192{k}-0{k + 1}-1{k}" for k in range(6)]  # over 89 in 2019, the data's year
    return pd.DataFrame({
        "full_name": [fake.name() for _ in range(n)],
        "first_name": [fake.first_name() for _ in range(n)],
        "surname": [fake.last_name() for _ in range(n)],
        "contact": [fake.email() for _ in range(n)],
        "tel": [fake.phone_number() for _ in range(n)],
        "ssn": [fake.ssn() for _ in range(n)],
        "nhs_no": [nhs_number(rng) for _ in range(n)],
        "iban": [fake.iban() for _ in range(n)],
        "card": [fake.credit_card_number(card_type="visa16") for _ in range(n)],
        "mrn": [f"{v:08d}" for v in rng.choice(10**8, n, replace=False)],
        "ref": [f"AC-{fake.unique.bothify('??####').upper()}" for _ in range(n)],
        "zip": zips,
        "dob": dob,
        "admitted": [d.isoformat() for d in admitted],
        "age": age,
        "note": [fake.paragraph(nb_sentences=3) for _ in range(n)],
        "homepage": [fake.url() for _ in range(n)],
        "ip": [fake.ipv4() for _ in range(n)],
        "sex": rng.choice(["F", "M"], n),
        "creatinine": rng.gamma(4.0, 0.25, n).round(2),
        "stage": rng.integers(1, 5, n),
        "kappa": rng.lognormal(0.3, 0.5, n).round(3),
        "smoker": rng.choice(["yes", "no"], n),
    })
