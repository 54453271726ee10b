//! A deterministic generator of the classicmodels database (a scale-model retailer: offices,
//! employees, customers, product lines, products, orders, order lines, payments) and its loader
//! into any MySQL or MariaDB.
//!
//! The schema is the well-known sample's (camelCase columns, `DECIMAL(10,2)` money, `DATE`
//! dates, foreign keys). Scale 1 has the sample's sizes: 7 offices, 23 employees, 122
//! customers, 7 product lines, 110 products, 326 orders (about 3,000 lines) from 2003-01-06 to
//! 2005-05-31. Money is kept in cents, so the generator's totals are exact. The same seed and
//! scale always give the same rows.

use anyhow::{Context, Result};
use chrono::{Days, NaiveDate};
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How much to generate.
#[derive(Debug, Clone)]
pub struct ClassicScale {
    pub customers: usize,
    pub products: usize,
    pub orders: usize,
    /// First and last order date.
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl ClassicScale {
    /// The sample's sizes times `factor` (offices, employees and product lines stay fixed).
    pub fn times(factor: usize) -> ClassicScale {
        let f = factor.max(1);
        ClassicScale {
            customers: 122 * f,
            products: 110 * f,
            orders: 326 * f,
            start: NaiveDate::from_ymd_opt(2003, 1, 6).unwrap_or_default(),
            end: NaiveDate::from_ymd_opt(2005, 5, 31).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Office {
    pub code: String,
    pub city: &'static str,
    pub country: &'static str,
    pub state: Option<&'static str>,
    pub territory: &'static str,
}

#[derive(Debug, Clone)]
pub struct Employee {
    pub number: i32,
    pub last_name: String,
    pub first_name: String,
    pub office_code: String,
    pub reports_to: Option<i32>,
    pub job_title: &'static str,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub number: i32,
    pub name: String,
    pub city: &'static str,
    pub country: &'static str,
    pub state: Option<&'static str>,
    pub sales_rep: Option<i32>,
    pub credit_limit_cents: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Product {
    pub code: String,
    pub name: String,
    pub line: &'static str,
    pub scale: &'static str,
    pub vendor: &'static str,
    pub stock: i32,
    pub buy_cents: i64,
    pub msrp_cents: i64,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub number: i32,
    pub date: NaiveDate,
    pub required: NaiveDate,
    pub shipped: Option<NaiveDate>,
    pub status: &'static str,
    pub comments: Option<String>,
    pub customer: i32,
}

#[derive(Debug, Clone)]
pub struct OrderLine {
    pub order: i32,
    pub product: String,
    pub quantity: i32,
    pub price_cents: i64,
    pub line_number: i32,
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub customer: i32,
    pub check: String,
    pub date: NaiveDate,
    pub amount_cents: i64,
}

/// The whole database, in insertion order.
#[derive(Debug, Clone)]
pub struct ClassicModels {
    pub offices: Vec<Office>,
    pub employees: Vec<Employee>,
    pub customers: Vec<Customer>,
    pub product_lines: Vec<(&'static str, &'static str)>,
    pub products: Vec<Product>,
    pub orders: Vec<Order>,
    pub lines: Vec<OrderLine>,
    pub payments: Vec<Payment>,
}

const OFFICES: [(&str, &str, Option<&str>, &str); 7] = [
    ("San Francisco", "USA", Some("CA"), "NA"),
    ("Boston", "USA", Some("MA"), "NA"),
    ("NYC", "USA", Some("NY"), "NA"),
    ("Paris", "France", None, "EMEA"),
    ("Tokyo", "Japan", Some("Chiyoda-Ku"), "Japan"),
    ("Sydney", "Australia", None, "APAC"),
    ("London", "UK", None, "EMEA"),
];

const PRODUCT_LINES: [(&str, &str); 7] = [
    ("Classic Cars", "Die-cast replicas of classic cars."),
    ("Motorcycles", "Motorcycle models with authentic details."),
    ("Planes", "Scale replicas of historic and modern aircraft."),
    ("Ships", "Ship models, from galleons to ocean liners."),
    ("Trains", "Model trains with working parts."),
    ("Trucks and Buses", "Trucks and buses in precise detail."),
    (
        "Vintage Cars",
        "Vintage automobiles from the early 20th century.",
    ),
];

const CITIES: [(&str, &str, Option<&str>); 16] = [
    ("Nantes", "France", None),
    ("Las Vegas", "USA", Some("NV")),
    ("Melbourne", "Australia", Some("Victoria")),
    ("Stavern", "Norway", None),
    ("San Rafael", "USA", Some("CA")),
    ("Warszawa", "Poland", None),
    ("Frankfurt", "Germany", None),
    ("Madrid", "Spain", None),
    ("Luleå", "Sweden", None),
    ("Kobenhavn", "Denmark", None),
    ("Lyon", "France", None),
    ("Singapore", "Singapore", None),
    ("NYC", "USA", Some("NY")),
    ("Torino", "Italy", None),
    ("Tokyo", "Japan", Some("Tokyo")),
    ("Montréal", "Canada", Some("Québec")),
];

const LAST_NAMES: [&str; 12] = [
    "Murphy",
    "Patterson",
    "Firrelli",
    "Bondur",
    "Bow",
    "Jennings",
    "Thompson",
    "Tseng",
    "Vanauf",
    "Hernandez",
    "Castillo",
    "Nishi",
];
const FIRST_NAMES: [&str; 12] = [
    "Diane", "Mary", "Jeff", "William", "Gerard", "Anthony", "Leslie", "Julie", "Steve", "Foon",
    "George", "Mami",
];
const SCALES: [&str; 6] = ["1:10", "1:12", "1:18", "1:24", "1:32", "1:700"];
const VENDORS: [&str; 6] = [
    "Min Lin Diecast",
    "Classic Metal Creations",
    "Highway 66 Mini Classics",
    "Red Start Diecast",
    "Motor City Art Classics",
    "Exoto Designs",
];
const STATUSES_PAST: [&str; 5] = ["Shipped", "Resolved", "Cancelled", "On Hold", "Disputed"];

impl ClassicModels {
    pub fn generate(seed: u64, scale: &ClassicScale) -> ClassicModels {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC1A5_51C0);
        let offices: Vec<Office> = OFFICES
            .iter()
            .enumerate()
            .map(|(i, (city, country, state, territory))| Office {
                code: (i + 1).to_string(),
                city,
                country,
                state: *state,
                territory,
            })
            .collect();
        let name = |rng: &mut ChaCha8Rng| {
            (
                LAST_NAMES[rng.random_range(0..LAST_NAMES.len())].to_string(),
                FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())].to_string(),
            )
        };
        // A president, two VPs, a sales manager per territory group, and 17 sales reps.
        let mut employees = Vec::new();
        let mut push = |rng: &mut ChaCha8Rng, title, office: &str, boss: Option<i32>| {
            let number = 1002 + employees.len() as i32 * 54;
            let (last, first) = name(rng);
            employees.push(Employee {
                number,
                last_name: last,
                first_name: first,
                office_code: office.to_string(),
                reports_to: boss,
                job_title: title,
            });
            number
        };
        let president = push(&mut rng, "President", "1", None);
        let vp_sales = push(&mut rng, "VP Sales", "1", Some(president));
        push(&mut rng, "VP Marketing", "1", Some(president));
        let managers: Vec<i32> = ["1", "4", "6"]
            .iter()
            .map(|o| push(&mut rng, "Sales Manager", o, Some(vp_sales)))
            .collect();
        let mut reps = Vec::new();
        for i in 0..17 {
            let office = offices[i % offices.len()].code.clone();
            let boss = managers[i % managers.len()];
            reps.push(push(&mut rng, "Sales Rep", &office, Some(boss)));
        }
        let customers: Vec<Customer> = (0..scale.customers)
            .map(|i| {
                let (city, country, state) = CITIES[rng.random_range(0..CITIES.len())];
                let (last, _) = name(&mut rng);
                // Some customers have no rep and no credit (the sample has such prospects).
                let prospect = rng.random_range(0..10) == 0;
                Customer {
                    number: 103 + i as i32,
                    name: format!(
                        "{last} {} Co.",
                        ["Gifts", "Models", "Collectables", "Replicas"][i % 4]
                    ),
                    city,
                    country,
                    state,
                    sales_rep: (!prospect).then(|| reps[rng.random_range(0..reps.len())]),
                    credit_limit_cents: (!prospect)
                        .then(|| rng.random_range(200..1500) as i64 * 10_000),
                }
            })
            .collect();
        let products: Vec<Product> = (0..scale.products)
            .map(|i| {
                let (line, _) = PRODUCT_LINES[i % PRODUCT_LINES.len()];
                let buy = rng.random_range(1_500..10_000) as i64;
                Product {
                    code: format!("S{}_{:04}", 10 + i % 90, 1000 + i),
                    name: format!("{} {} model #{}", 1950 + i % 50, line, i + 1),
                    line,
                    scale: SCALES[rng.random_range(0..SCALES.len())],
                    vendor: VENDORS[rng.random_range(0..VENDORS.len())],
                    stock: rng.random_range(0..9_000),
                    buy_cents: buy,
                    msrp_cents: buy * rng.random_range(150..200) / 100,
                }
            })
            .collect();
        let span = (scale.end - scale.start).num_days().max(0) as u64;
        let mut dates: Vec<NaiveDate> = (0..scale.orders)
            .map(|_| scale.start + Days::new(rng.random_range(0..=span)))
            .collect();
        dates.sort();
        let active: Vec<&Customer> = customers.iter().filter(|c| c.sales_rep.is_some()).collect();
        let mut orders = Vec::with_capacity(scale.orders);
        let mut lines = Vec::new();
        for (i, date) in dates.into_iter().enumerate() {
            let number = 10100 + i as i32;
            let recent = (scale.end - date).num_days() < 20;
            let status = if recent {
                "In Process"
            } else {
                match rng.random_range(0..40) {
                    0 => STATUSES_PAST[2],
                    1 => STATUSES_PAST[3],
                    2 => STATUSES_PAST[4],
                    3 => STATUSES_PAST[1],
                    _ => STATUSES_PAST[0],
                }
            };
            let shipped = matches!(status, "Shipped" | "Resolved" | "Disputed")
                .then(|| date + Days::new(rng.random_range(1..6)));
            let customer = match active.is_empty() {
                true => customers.first().map_or(103, |c| c.number),
                false => active[rng.random_range(0..active.len())].number,
            };
            orders.push(Order {
                number,
                date,
                required: date + Days::new(rng.random_range(7..11)),
                shipped,
                status,
                comments: (status != "Shipped").then(|| format!("Order {number}: {status}.")),
                customer,
            });
            let n = rng.random_range(1..=17.min(products.len().max(1)));
            let first = rng.random_range(0..products.len().max(1));
            for k in 0..n {
                let p = &products[(first + k * 7) % products.len()];
                if lines
                    .iter()
                    .rev()
                    .take(k)
                    .any(|l: &OrderLine| l.order == number && l.product == p.code)
                {
                    continue;
                }
                lines.push(OrderLine {
                    order: number,
                    product: p.code.clone(),
                    quantity: rng.random_range(20..60),
                    price_cents: p.msrp_cents * rng.random_range(80..=100) / 100,
                    line_number: k as i32 + 1,
                });
            }
        }
        // Shipped orders are paid by check a few days to weeks later, sometimes two at once.
        let mut payments = Vec::new();
        let mut check_no = 100_000 + rng.random_range(0..800_000);
        for o in &orders {
            if !matches!(o.status, "Shipped" | "Resolved") {
                continue;
            }
            let amount: i64 = lines
                .iter()
                .filter(|l| l.order == o.number)
                .map(|l| l.quantity as i64 * l.price_cents)
                .sum();
            let date = o.shipped.unwrap_or(o.date) + Days::new(rng.random_range(1..40));
            if date > scale.end {
                continue;
            }
            check_no += rng.random_range(1..5_000);
            let letters: String = (0..2)
                .map(|_| (b'A' + rng.random_range(0..26u8)) as char)
                .collect();
            payments.push(Payment {
                customer: o.customer,
                check: format!("{letters}{check_no}"),
                date,
                amount_cents: amount,
            });
        }
        payments.sort_by_key(|p| p.date);
        ClassicModels {
            offices,
            employees,
            customers,
            product_lines: PRODUCT_LINES.to_vec(),
            products,
            orders,
            lines,
            payments,
        }
    }

    /// The order lines of orders dated up to `until`.
    pub fn lines_until(&self, until: Option<NaiveDate>) -> impl Iterator<Item = &OrderLine> {
        let orders: std::collections::HashMap<i32, NaiveDate> =
            self.orders.iter().map(|o| (o.number, o.date)).collect();
        self.lines
            .iter()
            .filter(move |l| until.is_none_or(|u| orders.get(&l.order).is_some_and(|d| *d <= u)))
    }
}

/// `12345` cents as `123.45`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

const DDL: &str = "
CREATE TABLE classicmodels.offices (
  officeCode varchar(10) NOT NULL, city varchar(50) NOT NULL, phone varchar(50) NOT NULL,
  addressLine1 varchar(50) NOT NULL, addressLine2 varchar(50) DEFAULT NULL,
  state varchar(50) DEFAULT NULL, country varchar(50) NOT NULL, postalCode varchar(15) NOT NULL,
  territory varchar(10) NOT NULL, PRIMARY KEY (officeCode)) ENGINE=InnoDB;
CREATE TABLE classicmodels.employees (
  employeeNumber int NOT NULL, lastName varchar(50) NOT NULL, firstName varchar(50) NOT NULL,
  extension varchar(10) NOT NULL, email varchar(100) NOT NULL, officeCode varchar(10) NOT NULL,
  reportsTo int DEFAULT NULL, jobTitle varchar(50) NOT NULL, PRIMARY KEY (employeeNumber),
  FOREIGN KEY (reportsTo) REFERENCES classicmodels.employees (employeeNumber),
  FOREIGN KEY (officeCode) REFERENCES classicmodels.offices (officeCode)) ENGINE=InnoDB;
CREATE TABLE classicmodels.customers (
  customerNumber int NOT NULL, customerName varchar(50) NOT NULL,
  contactLastName varchar(50) NOT NULL, contactFirstName varchar(50) NOT NULL,
  phone varchar(50) NOT NULL, addressLine1 varchar(50) NOT NULL,
  addressLine2 varchar(50) DEFAULT NULL, city varchar(50) NOT NULL,
  state varchar(50) DEFAULT NULL, postalCode varchar(15) DEFAULT NULL,
  country varchar(50) NOT NULL, salesRepEmployeeNumber int DEFAULT NULL,
  creditLimit decimal(10,2) DEFAULT NULL, PRIMARY KEY (customerNumber),
  FOREIGN KEY (salesRepEmployeeNumber) REFERENCES classicmodels.employees (employeeNumber))
  ENGINE=InnoDB;
CREATE TABLE classicmodels.productlines (
  productLine varchar(50) NOT NULL, textDescription varchar(4000) DEFAULT NULL,
  htmlDescription mediumtext, image mediumblob, PRIMARY KEY (productLine)) ENGINE=InnoDB;
CREATE TABLE classicmodels.products (
  productCode varchar(15) NOT NULL, productName varchar(70) NOT NULL,
  productLine varchar(50) NOT NULL, productScale varchar(10) NOT NULL,
  productVendor varchar(50) NOT NULL, productDescription text NOT NULL,
  quantityInStock smallint NOT NULL, buyPrice decimal(10,2) NOT NULL,
  MSRP decimal(10,2) NOT NULL, PRIMARY KEY (productCode),
  FOREIGN KEY (productLine) REFERENCES classicmodels.productlines (productLine)) ENGINE=InnoDB;
CREATE TABLE classicmodels.orders (
  orderNumber int NOT NULL, orderDate date NOT NULL, requiredDate date NOT NULL,
  shippedDate date DEFAULT NULL, status varchar(15) NOT NULL, comments text,
  customerNumber int NOT NULL, PRIMARY KEY (orderNumber), KEY (orderDate),
  FOREIGN KEY (customerNumber) REFERENCES classicmodels.customers (customerNumber)) ENGINE=InnoDB;
CREATE TABLE classicmodels.orderdetails (
  orderNumber int NOT NULL, productCode varchar(15) NOT NULL, quantityOrdered int NOT NULL,
  priceEach decimal(10,2) NOT NULL, orderLineNumber smallint NOT NULL,
  PRIMARY KEY (orderNumber, productCode),
  FOREIGN KEY (orderNumber) REFERENCES classicmodels.orders (orderNumber),
  FOREIGN KEY (productCode) REFERENCES classicmodels.products (productCode)) ENGINE=InnoDB;
CREATE TABLE classicmodels.payments (
  customerNumber int NOT NULL, checkNumber varchar(50) NOT NULL, paymentDate date NOT NULL,
  amount decimal(10,2) NOT NULL, PRIMARY KEY (customerNumber, checkNumber), KEY (paymentDate),
  FOREIGN KEY (customerNumber) REFERENCES classicmodels.customers (customerNumber)) ENGINE=InnoDB;
";

/// Rows per table after a load.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadCounts {
    pub tables: std::collections::BTreeMap<String, u64>,
}

fn lit(v: impl Into<Value>) -> String {
    v.into().as_sql(false)
}

fn opt<T: Into<Value>>(v: Option<T>) -> String {
    v.map_or_else(|| "NULL".to_string(), lit)
}

/// Loads `data` into schema `classicmodels`: with `fresh`, the schema is dropped and created
/// first (a rerun gives the same rows). Orders, their lines and payments dated after `until` are
/// left out; a later load with a later `until` (or none) and `fresh = false` adds them, as new
/// business arriving in the source. Returns the rows each table then holds.
pub async fn load(
    conn: &mut mysql_async::Conn,
    data: &ClassicModels,
    until: Option<NaiveDate>,
    fresh: bool,
) -> Result<LoadCounts> {
    if fresh {
        conn.query_drop("DROP DATABASE IF EXISTS classicmodels; CREATE DATABASE classicmodels CHARACTER SET utf8mb4")
            .await
            .context("creating database classicmodels")?;
        conn.query_drop(DDL).await.context("creating the tables")?;
    }
    let within = |d: NaiveDate| until.is_none_or(|u| d <= u);
    let date = |d: NaiveDate| lit(d.format("%Y-%m-%d").to_string());
    let mut batches: Vec<(&str, Vec<String>)> = Vec::new();
    batches.push((
        "offices",
        data.offices
            .iter()
            .map(|o| {
                format!(
                    "({},{},{},{},NULL,{},{},{},{})",
                    lit(o.code.as_str()),
                    lit(o.city),
                    lit(format!("+1 650 219 {:04}", o.code.len() * 1000 + 4782)),
                    lit(format!("{} Main Street", 100 + o.code.len())),
                    opt(o.state),
                    lit(o.country),
                    lit(format!("{:05}", 94080 + o.code.parse::<i32>().unwrap_or(0))),
                    lit(o.territory)
                )
            })
            .collect(),
    ));
    batches.push((
        "employees",
        data.employees
            .iter()
            .map(|e| {
                format!(
                    "({},{},{},{},{},{},{},{})",
                    e.number,
                    lit(e.last_name.as_str()),
                    lit(e.first_name.as_str()),
                    lit(format!("x{}", 100 + e.number % 9000)),
                    lit(format!(
                        "{}{}@classicmodelcars.com",
                        e.first_name
                            .chars()
                            .next()
                            .unwrap_or('x')
                            .to_ascii_lowercase(),
                        e.last_name.to_ascii_lowercase()
                    )),
                    lit(e.office_code.as_str()),
                    opt(e.reports_to),
                    lit(e.job_title)
                )
            })
            .collect(),
    ));
    batches.push((
        "customers",
        data.customers
            .iter()
            .map(|c| {
                format!(
                    "({},{},{},{},{},{},NULL,{},{},{},{},{},{})",
                    c.number,
                    lit(c.name.as_str()),
                    lit(c.name.split(' ').next().unwrap_or("")),
                    lit("Jean"),
                    lit(format!("40.32.{:04}", c.number)),
                    lit(format!("{} rue Royale", c.number % 90 + 1)),
                    lit(c.city),
                    opt(c.state),
                    lit(format!("{:05}", 44000 + c.number)),
                    lit(c.country),
                    opt(c.sales_rep),
                    c.credit_limit_cents.map_or("NULL".into(), money)
                )
            })
            .collect(),
    ));
    batches.push((
        "productlines",
        data.product_lines
            .iter()
            .map(|(line, text)| {
                format!(
                    "({},{},{},{})",
                    lit(*line),
                    lit(*text),
                    lit(format!("<p>{text}</p>")),
                    // A few bytes of binary: the extract must not choke on BLOBs it skips.
                    lit(vec![0u8, 159, 146, 150])
                )
            })
            .collect(),
    ));
    batches.push((
        "products",
        data.products
            .iter()
            .map(|p| {
                format!(
                    "({},{},{},{},{},{},{},{},{})",
                    lit(p.code.as_str()),
                    lit(p.name.as_str()),
                    lit(p.line),
                    lit(p.scale),
                    lit(p.vendor),
                    lit(format!("A {} scale model of the {}.", p.scale, p.name)),
                    p.stock,
                    money(p.buy_cents),
                    money(p.msrp_cents)
                )
            })
            .collect(),
    ));
    batches.push((
        "orders",
        data.orders
            .iter()
            .filter(|o| within(o.date))
            .map(|o| {
                format!(
                    "({},{},{},{},{},{},{})",
                    o.number,
                    date(o.date),
                    date(o.required),
                    o.shipped.map_or("NULL".into(), date),
                    lit(o.status),
                    opt(o.comments.as_deref()),
                    o.customer
                )
            })
            .collect(),
    ));
    batches.push((
        "orderdetails",
        data.lines_until(until)
            .map(|l| {
                format!(
                    "({},{},{},{},{})",
                    l.order,
                    lit(l.product.as_str()),
                    l.quantity,
                    money(l.price_cents),
                    l.line_number
                )
            })
            .collect(),
    ));
    batches.push((
        "payments",
        data.payments
            .iter()
            .filter(|p| within(p.date))
            .map(|p| {
                format!(
                    "({},{},{},{})",
                    p.customer,
                    lit(p.check.as_str()),
                    date(p.date),
                    money(p.amount_cents)
                )
            })
            .collect(),
    ));
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .context("starting the load")?;
    for (table, rows) in &batches {
        for chunk in rows.chunks(500) {
            // INSERT IGNORE: a later load adds what is new and leaves loaded rows as they are.
            tx.query_drop(format!(
                "INSERT IGNORE INTO classicmodels.{table} VALUES {}",
                chunk.join(",")
            ))
            .await
            .with_context(|| format!("loading classicmodels.{table}"))?;
        }
    }
    tx.commit().await.context("committing the load")?;
    let mut counts = LoadCounts::default();
    for (table, _) in &batches {
        let n: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM classicmodels.{table}"))
            .await
            .with_context(|| format!("counting classicmodels.{table}"))?;
        counts.tables.insert(table.to_string(), n.unwrap_or(0));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_consistent() {
        let scale = ClassicScale::times(1);
        let a = ClassicModels::generate(7, &scale);
        let b = ClassicModels::generate(7, &scale);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(
            (a.customers.len(), a.products.len(), a.orders.len()),
            (122, 110, 326)
        );
        assert_eq!(a.employees.len(), 23);
        assert!(a.lines.len() > 1_500, "{}", a.lines.len());
        // Keys are unique and references resolve.
        let mut keys: Vec<(i32, &str)> = a
            .lines
            .iter()
            .map(|l| (l.order, l.product.as_str()))
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), a.lines.len());
        let mut checks: Vec<(i32, &str)> = a
            .payments
            .iter()
            .map(|p| (p.customer, p.check.as_str()))
            .collect();
        checks.sort();
        checks.dedup();
        assert_eq!(checks.len(), a.payments.len());
        assert!(a.orders.windows(2).all(|w| w[0].date <= w[1].date));
        assert!(a
            .orders
            .iter()
            .all(|o| o.date >= scale.start && o.date <= scale.end));
        assert!(a.customers.iter().any(|c| c.sales_rep.is_none()));
        assert_eq!(money(12345), "123.45");
        assert_eq!(money(-5), "-0.05");
        let mid = NaiveDate::from_ymd_opt(2004, 6, 30).unwrap();
        let early = a.lines_until(Some(mid)).count();
        assert!(early > 0 && early < a.lines.len());
    }
}
