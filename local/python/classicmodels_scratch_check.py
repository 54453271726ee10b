"""Builds the classicmodels dbt project (pipelines/classicmodels/dbt) on a scratch DuckDB warehouse of hand-written
rows, without any Iceberg catalog, and checks what the build made of them.

The rows go straight into tables `classicmodels.<table>`, whose columns are read from
pipelines/classicmodels/pipeline.toml (its [tables.*] columns in order, then the transform's metadata columns),
and dbt runs with `--vars '{skip_transform_views: true}'`, so the on-run-start hook leaves them as they are (a
real build re-points that schema at the catalog's Iceberg snapshots and fails without DEFTUNES_CATALOG). They
cover a customer with two versions (the latest, with another city, country, credit limit and sales rep, must
win), a customer without a sales rep (null salesRepEmployeeNumber), an order with no payments (its customer has
none), an order whose status changed (two versions), an order line with two versions, a product with two versions
on the same ingest_on (the later processing wins), prices with cents whose sums a float would get wrong
(0.10 + 0.20), and a cancelled order (in the fact, left out of the BI views).

Usage: classicmodels_scratch_check.py [--workdir DIR]   (warehouse and dbt's target/, logs/ there; a temp dir
       otherwise)
Exits non-zero on failure (dbt build, any dbt test, or the checks below); prints one JSON line on success.
"""
import datetime as dt
import os
import sys
from decimal import Decimal as D

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scratch  # noqa: E402
from dbt_cli import REPO  # noqa: E402
from duckdb_env import connect  # noqa: E402

PIPELINE = os.path.join(REPO, "pipelines", "classicmodels")
PROJECT = os.path.join(PIPELINE, "dbt")
SCHEMA = "classicmodels"
SERVING = "classicmodels_serving"
BI = "classicmodels_bi"

# Versions: (ingest_on, hour of processing_timestamp). V1b is V1's day, processed later.
V1, V1b, V2 = (dt.date(2024, 1, 1), 12), (dt.date(2024, 1, 1), 13), (dt.date(2024, 1, 2), 12)
d = dt.date.fromisoformat

OFFICES = [  # office_code, city, phone, address_line1, address_line2, state, country, postal_code, territory
    ("1", "San Francisco", "+1 650 219 4782", "100 Market Street", "Suite 300", "CA", "USA", "94080", "NA", V1),
    ("4", "Paris", "+33 14 723 4404", "43 Rue Jouffroy D'abbans", None, None, "France", "75017", "EMEA", V1),
]
EMPLOYEES = [  # employee_number, last_name, first_name, extension, email, office_code, reports_to, job_title
    (1002, "Murphy", "Diane", "x5800", "dmurphy@classicmodelcars.com", "1", None, "President", V1),
    (1165, "Jennings", "Leslie", "x3291", "ljennings@classicmodelcars.com", "1", 1002, "Sales Rep", V1),
    (1370, "Hernandez", "Gerard", "x2028", "ghernande@classicmodelcars.com", "4", 1002, "Sales Rep", V1),
]
CUSTOMERS = [  # customer_number, name, contact last, first, phone, address1, address2, city, state, postal, country,
    #          sales_rep_employee_number, credit_limit
    (103, "Atelier graphique", "Schmitt", "Carine", "40.32.2555", "54, rue Royale", None, "Nantes", None, "44000",
     "France", 1370, D("21000.00"), V1),
    # its later version: moved to Brussels, another rep (1165, office 1), a higher credit limit
    (103, "Atelier graphique", "Schmitt", "Carine", "+32 2 555 0101", "12 Rue Neuve", None, "Brussels", None,
     "1000", "Belgium", 1165, D("25000.00"), V2),
    (112, "Signal Gift Stores", "King", "Jean", "7025551838", "8489 Strong St.", None, "Las Vegas", "NV", "83030",
     "USA", 1165, D("71800.00"), V1),
    (114, "Australian Collectors, Co.", "Ferguson", "Peter", "03 9520 4555", "636 St Kilda Road", "Level 3",
     "Melbourne", "Victoria", "3004", "Australia", None, D("117300.00"), V1),  # no sales rep
    (119, "La Rochelle Gifts", "Labrune", "Janine", "40.67.8555", "67, rue des Cinquante Otages", None, "Nantes",
     None, "44000", "France", 1370, D("118200.00"), V1),  # no payments
]
PRODUCTLINES = [  # product_line, text_description
    ("Classic Cars", "Attention car enthusiasts: make your wildest car ownership dreams come true.", V1),
    ("Motorcycles", "Our motorcycles are state of the art replicas of classic as well as contemporary models.", V1),
    ("Trains", "Model trains are a rewarding hobby.", V1),  # no product
]
PRODUCTS = [  # product_code, name, line, scale, vendor, description, quantity_in_stock, buy_price, msrp
    ("S10_1678", "1969 Harley Davidson Ultimate Chopper", "Motorcycles", "1:10", "Min Lin Diecast", "A chopper.",
     7933, D("48.81"), D("95.70"), V1),
    ("S10_1678", "1969 Harley Davidson Ultimate Chopper", "Motorcycles", "1:10", "Min Lin Diecast", "A chopper.",
     7900, D("48.81"), D("99.00"), V1b),  # same ingest_on, later processing: this one
    ("S10_1949", "1952 Alpine Renault 1300", "Classic Cars", "1:10", "Classic Metal Creations", "A coupe.",
     7305, D("98.58"), D("214.30"), V1),
    ("S12_1099", "1968 Ford Mustang", "Classic Cars", "1:12", "Autoart Studio Design", "A muscle car.",
     68, D("95.34"), D("194.57"), V1),
]
ORDERS = [  # order_number, order_date, required_date, shipped_date, status, comments, customer_number
    (10100, d("2003-01-06"), d("2003-01-13"), d("2003-01-10"), "Shipped", None, 103, V1),
    (10101, d("2003-01-09"), d("2003-01-18"), None, "In Process", None, 112, V1),
    (10101, d("2003-01-09"), d("2003-01-18"), d("2003-01-11"), "Shipped", "Check on availability.", 112, V2),
    (10102, d("2003-02-10"), d("2003-02-18"), None, "In Process", None, 114, V1),
    (10103, d("2003-02-15"), d("2003-02-24"), None, "On Hold", "Credit limit exceeded.", 119, V1),
    (10104, d("2003-02-20"), d("2003-03-01"), None, "Cancelled", "Customer cancelled.", 112, V1),
]
ORDERDETAILS = [  # order_number, product_code, quantity_ordered, price_each, order_line_number, order_date
    (10100, "S10_1678", 30, D("81.35"), 1, d("2003-01-06"), V1),
    (10100, "S10_1949", 50, D("214.30"), 2, d("2003-01-06"), V1),
    (10101, "S12_1099", 25, D("161.49"), 1, d("2003-01-09"), V1),
    (10101, "S10_1678", 45, D("81.33"), 2, d("2003-01-09"), V1),
    (10102, "S10_1949", 10, D("205.99"), 1, d("2003-02-10"), V1),
    (10102, "S10_1949", 12, D("205.99"), 1, d("2003-02-10"), V2),  # its later version: 12, not 10
    (10102, "S10_1678", 2, D("0.10"), 2, d("2003-02-10"), V1),
    (10103, "S10_1678", 1, D("0.10"), 1, d("2003-02-15"), V1),
    (10103, "S12_1099", 3, D("33.33"), 2, d("2003-02-15"), V1),
    (10104, "S10_1949", 5, D("200.00"), 1, d("2003-02-20"), V1),  # cancelled
]
PAYMENTS = [  # customer_number, check_number, payment_date, amount
    (103, "HQ336336", d("2003-01-20"), D("6066.78"), V1),
    (112, "JM555205", d("2003-02-01"), D("7697.10"), V1),
    (114, "GG31455", d("2003-03-01"), D("2000.00"), V1),
    (114, "MA765515", d("2003-03-05"), D("471.89"), V1),
]
ROWS = {"offices": OFFICES, "employees": EMPLOYEES, "customers": CUSTOMERS, "productlines": PRODUCTLINES,
        "products": PRODUCTS, "orders": ORDERS, "orderdetails": ORDERDETAILS, "payments": PAYMENTS}

# What the build must make of them (worked out by hand, not by the models' SQL).
WANT_FACT = {  # (order_number, product_code) -> (employee_number, office_code, status, quantity, line_amount)
    (10100, "S10_1678"): (1165, "1", "Shipped", 30, D("2440.50")),
    (10100, "S10_1949"): (1165, "1", "Shipped", 50, D("10715.00")),
    (10101, "S12_1099"): (1165, "1", "Shipped", 25, D("4037.25")),
    (10101, "S10_1678"): (1165, "1", "Shipped", 45, D("3659.85")),
    (10102, "S10_1949"): (None, None, "In Process", 12, D("2471.88")),
    (10102, "S10_1678"): (None, None, "In Process", 2, D("0.20")),
    (10103, "S10_1678"): (1370, "4", "On Hold", 1, D("0.10")),
    (10103, "S12_1099"): (1370, "4", "On Hold", 3, D("99.99")),
    (10104, "S10_1949"): (1165, "1", "Cancelled", 5, D("1000.00")),
}
WANT_BY_LINE = {  # (year, month, product_line) -> (revenue, orders, quantity); cancelled 10104 left out
    (2003, 1, "Classic Cars"): (D("14752.25"), 2, 75),
    (2003, 1, "Motorcycles"): (D("6100.35"), 2, 75),
    (2003, 2, "Classic Cars"): (D("2571.87"), 2, 15),
    (2003, 2, "Motorcycles"): (D("0.30"), 2, 3),
}
WANT_BY_COUNTRY = {  # (year, month, country) -> (revenue, orders, quantity); 103 counts as Belgium (latest)
    (2003, 1, "Belgium"): (D("13155.50"), 1, 80),
    (2003, 1, "USA"): (D("7697.10"), 1, 70),
    (2003, 2, "Australia"): (D("2472.08"), 1, 14),
    (2003, 2, "France"): (D("100.09"), 1, 4),
}
WANT_CUSTOMER_103 = ("Brussels", "Belgium", 1165, D("25000.00"))
WANT_DAYS = (d("2003-02-20") - d("2003-01-06")).days + 1


def _meta(table: str, i: int, version) -> tuple:
    ingest_on, hour = version
    return (ingest_on, dt.datetime.combine(ingest_on, dt.time(hour)), "mysql_classicmodels",
            f"landing_zone/mysql/{table}/ingest_on={ingest_on}/{i}.json")


def write_warehouse(path: str) -> None:
    scratch.write_warehouse(path, SCHEMA, scratch.pipeline_tables(PIPELINE, ROWS), _meta)


def build(workdir: str, warehouse: str) -> None:
    scratch.build(PROJECT, SCHEMA, workdir, warehouse)


def _exact(values) -> bool:
    """Every amount came back as a Decimal (an exact type), not a float."""
    return all(isinstance(v, D) for v in values)


def check(warehouse: str) -> dict:
    con = connect(warehouse, read_only=True)
    try:
        fact = {(r[0], r[1]): tuple(r[2:]) for r in con.execute(
            f"SELECT order_number, product_code, employee_number, office_code, status, quantity_ordered, "
            f"line_amount FROM {SERVING}.fact_orders").fetchall()}
        by_line = {(r[0], r[1], r[2]): tuple(r[3:]) for r in con.execute(
            f"SELECT order_year, order_month, product_line, revenue, orders, quantity "
            f"FROM {BI}.sales_by_product_line_monthly").fetchall()}
        by_country = {(r[0], r[1], r[2]): tuple(r[3:]) for r in con.execute(
            f"SELECT order_year, order_month, country, revenue, orders, quantity "
            f"FROM {BI}.sales_by_country_monthly").fetchall()}
        customer_103 = con.execute(
            f"SELECT city, country, sales_rep_employee_number, credit_limit FROM {SERVING}.dim_customers "
            f"WHERE customer_number = 103").fetchall()
        customers = {r[0]: (r[1], r[2]) for r in con.execute(
            f"SELECT customer_number, payment_count, total_payments FROM {SERVING}.dim_customers").fetchall()}
        msrp = con.execute(f"SELECT msrp, product_line_description FROM {SERVING}.dim_products "
                           f"WHERE product_code = 'S10_1678'").fetchall()
        days = con.execute(f"SELECT count(*), min(date_day), max(date_day) FROM {SERVING}.dim_dates").fetchone()
        types = dict(con.execute(
            f"SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{SERVING}' AND table_name = 'fact_orders'").fetchall())
    finally:
        con.close()
    failures = []
    if len(fact) != len(WANT_FACT):
        failures.append(f"fact_orders: {len(fact)} rows, want {len(WANT_FACT)}")
    for what, got, want in (("fact_orders", fact, WANT_FACT),
                            ("sales_by_product_line_monthly", by_line, WANT_BY_LINE),
                            ("sales_by_country_monthly", by_country, WANT_BY_COUNTRY)):
        if got != want:
            failures.append(f"{what}: {got}, want {want}")
        amounts = [v[-1] for v in got.values()] if what == "fact_orders" else [v[0] for v in got.values()]
        if not _exact(amounts):
            failures.append(f"{what}: amounts not exact decimals: {sorted({type(a).__name__ for a in amounts})}")
    total_fact = sum(v[-1] for v in fact.values())
    total_source = sum(r[2] * r[3] for r in ORDERDETAILS if not (r[0] == 10102 and r[2] == 10))
    if total_fact != total_source:
        failures.append(f"fact_orders: sum(line_amount) {total_fact}, want {total_source}")
    bi_revenue = {"line": sum(v[0] for v in by_line.values()), "country": sum(v[0] for v in by_country.values())}
    want_bi = total_source - D("1000.00")  # the cancelled order
    if set(bi_revenue.values()) != {want_bi}:
        failures.append(f"BI revenue totals {bi_revenue}, want {want_bi} in both")
    if customer_103 != [WANT_CUSTOMER_103]:
        failures.append(f"dim_customers 103: {customer_103}, want its latest version {[WANT_CUSTOMER_103]}")
    if customers.get(119) != (0, D("0.00")) or customers.get(114) != (2, D("2471.89")):
        failures.append(f"dim_customers payments: 119 {customers.get(119)} (want (0, 0.00)), "
                        f"114 {customers.get(114)} (want (2, 2471.89))")
    if msrp != [(D("99.00"), PRODUCTLINES[1][1])]:
        failures.append(f"dim_products S10_1678: {msrp}, want msrp 99.00 (later processing) and its line's text")
    if days != (WANT_DAYS, d("2003-01-06"), d("2003-02-20")):
        failures.append(f"dim_dates: {days}, want {WANT_DAYS} days 2003-01-06 .. 2003-02-20")
    for col in ("price_each", "line_amount"):
        if not types.get(col, "").startswith("DECIMAL"):
            failures.append(f"fact_orders.{col} is {types.get(col)}, want an exact DECIMAL")
    if failures:
        raise SystemExit("FAILED:\n  " + "\n  ".join(failures))
    print(f"  ok  {len(fact)} fact_orders lines (sum {total_fact}), BI revenue {want_bi} in both views "
          f"({len(by_line)} product-line months, {len(by_country)} country months), customer 103 at its latest "
          f"version, {days[0]} dates as expected")
    return {"fact_orders": len(fact), "revenue": str(total_fact), "bi_revenue": str(want_bi),
            "sales_by_product_line_monthly": len(by_line), "sales_by_country_monthly": len(by_country),
            "dim_dates": days[0]}


def main() -> None:
    scratch.main(__doc__.splitlines()[0], "classicmodels-scratch-", write_warehouse, build, check)


if __name__ == "__main__":
    main()
