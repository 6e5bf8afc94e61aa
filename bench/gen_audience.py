#!/usr/bin/env python3
"""Write a benchmark audience: `gen_audience.py N FILE`.

Columns name,email,phone,tags (the shape of a customer export). Every address is distinct and
valid; phone numbers are German mobile numbers, half in international form (+49 151 ...) and
half in national form (0151 ...), so both normalisation paths are exercised. Deterministic.
"""
import sys

FIRST = ["Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hannes", "Ida", "Jonas",
         "Katrin", "Lukas", "Mia", "Noah", "Olga", "Paul", "Rita", "Sven", "Tina", "Uwe"]
LAST = ["Müller", "Schröder", "Weiß", "Öztürk", "Schmidt", "Fischer", "Weber", "Wagner",
        "Becker", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Braun"]
TAGS = ["appointments", "portrait", "wedding", "appointments;portrait", "newsletter"]


def main():
    n = int(sys.argv[1])
    path = sys.argv[2]
    prefixes = ["151", "152", "157", "159"]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("name,email,phone,tags\n")
        rows = []
        for i in range(n):
            first = FIRST[i % len(FIRST)]
            last = LAST[(i // len(FIRST)) % len(LAST)]
            prefix = prefixes[i % len(prefixes)]
            digits = f"{i:08d}"
            if i % 2 == 0:
                phone = f"+49 {prefix} {digits}"
            else:
                phone = f"0{prefix} {digits}"
            rows.append(f"{first} {last},{first.lower()}.{i}@example.com,{phone},{TAGS[i % len(TAGS)]}\n")
            if len(rows) >= 10000:
                f.write("".join(rows))
                rows.clear()
        f.write("".join(rows))


if __name__ == "__main__":
    main()
