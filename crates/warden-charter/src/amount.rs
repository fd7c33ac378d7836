//! Exact decimal amounts for spend limits: fixed point with six fractional digits.
//!
//! Money is summed across calls, so binary floating point (where 0.1 + 0.2 > 0.3) is not good
//! enough. Amounts are parsed from the decimal text of a JSON or YAML number (or a numeric
//! string), and refused when they carry more precision than a micro-unit.

use std::fmt;

/// Fractional digits kept.
const SCALE_DIGITS: u32 = 6;
const SCALE: i128 = 1_000_000;

/// A decimal amount in millionths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i128);

/// Why a value is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not decimal number text.
    #[error("`{0}` is not a decimal number")]
    NotANumber(String),
    /// More than six fractional digits that are not zero.
    #[error("`{0}` has more than {SCALE_DIGITS} decimal places")]
    TooPrecise(String),
    /// Out of range.
    #[error("`{0}` is out of range")]
    OutOfRange(String),
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// Parses decimal text: an optional sign, digits, an optional fraction, an optional
    /// exponent (`1.5e3`).
    pub fn parse(text: &str) -> Result<Amount, AmountError> {
        let bad = || AmountError::NotANumber(text.to_owned());
        let t = text.trim();
        let (negative, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let (mantissa, exponent) = match t.find(['e', 'E']) {
            Some(i) => {
                let exp: i32 = t.get(i + 1..).ok_or_else(bad)?.parse().map_err(|_| bad())?;
                (t.get(..i).ok_or_else(bad)?, exp)
            }
            None => (t, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty())
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // digits as one integer, and the power of ten it is scaled by
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| bad())?;
        let shift = exponent
            .checked_sub(frac_len)
            .and_then(|s| s.checked_add(i32::try_from(SCALE_DIGITS).ok()?))
            .ok_or_else(|| AmountError::OutOfRange(text.to_owned()))?;
        if digits.is_empty() {
            return Ok(Amount::ZERO);
        }
        if digits.len() > 30 {
            return Err(AmountError::OutOfRange(text.to_owned()));
        }
        let mut value: i128 = digits.parse().map_err(|_| bad())?;
        if shift >= 0 {
            let factor = 10i128
                .checked_pow(u32::try_from(shift).map_err(|_| bad())?)
                .ok_or_else(|| AmountError::OutOfRange(text.to_owned()))?;
            value = value
                .checked_mul(factor)
                .ok_or_else(|| AmountError::OutOfRange(text.to_owned()))?;
        } else {
            let factor = 10i128
                .checked_pow(shift.unsigned_abs())
                .ok_or_else(|| AmountError::TooPrecise(text.to_owned()))?;
            if value % factor != 0 {
                return Err(AmountError::TooPrecise(text.to_owned()));
            }
            value /= factor;
        }
        Ok(Amount(if negative { -value } else { value }))
    }

    /// An amount from a JSON value: a number, or a string holding one.
    pub fn from_json(value: &serde_json::Value) -> Result<Amount, AmountError> {
        match value {
            serde_json::Value::Number(n) => Amount::parse(&n.to_string()),
            serde_json::Value::String(s) => Amount::parse(s),
            other => Err(AmountError::NotANumber(other.to_string())),
        }
    }

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// Whether the amount is below zero.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = SCALE.unsigned_abs();
        let int = abs / scale;
        let frac = abs % scale;
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_exactly() {
        let a = Amount::parse("0.1").unwrap();
        let b = Amount::parse("0.2").unwrap();
        assert_eq!(a.checked_add(b), Some(Amount::parse("0.3").unwrap()));
        assert_eq!(
            Amount::parse("1.5e3").unwrap(),
            Amount::parse("1500").unwrap()
        );
        assert_eq!(Amount::parse("1500.00").unwrap().to_string(), "1500");
        assert_eq!(Amount::parse("-2.25").unwrap().to_string(), "-2.25");
        assert_eq!(Amount::parse("000").unwrap(), Amount::ZERO);
        assert_eq!(
            Amount::parse("12e-7").unwrap_err(),
            AmountError::TooPrecise("12e-7".into())
        );
        assert!(Amount::parse("1.2.3").is_err());
        assert!(Amount::parse("abc").is_err());
        assert!(Amount::parse("").is_err());
        assert!(Amount::parse("1e400").is_err());
    }
}
