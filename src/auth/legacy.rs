//! Verifying password hashes written by the services users migrate from, so nobody has to
//! reset a password: Werkzeug's `pbkdf2:<digest>:<iterations>$salt$hex` and
//! `scrypt:<N>:<r>:<p>$salt$hex` (the Flask generation), and bcrypt `$2a$`/`$2b$`/`$2y$`
//! (passlib, the FastAPI generation). A successful login replaces them with Argon2id.

use hmac::digest::{FixedOutputReset, KeyInit};
use hmac::{Hmac, Mac};

/// A stored hash's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2,
    WerkzeugPbkdf2,
    WerkzeugScrypt,
    Bcrypt,
}

/// Bounds on imported parameters: generous for real hashes, but no hash may make one login
/// cost minutes.
const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;
const MAX_SCRYPT_LOG_N: u8 = 20;

/// Recognises a hash and checks that its parameters are ones we verify. The error says why a
/// hash cannot be used (shown by `users-api import`).
pub fn scheme_of(hash: &str) -> Result<Scheme, String> {
    if hash.starts_with("$argon2") {
        return argon2::PasswordHash::new(hash)
            .map(|_| Scheme::Argon2)
            .map_err(|e| format!("malformed Argon2 hash: {e}"));
    }
    if hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$") {
        return if hash.len() == 60 {
            Ok(Scheme::Bcrypt)
        } else {
            Err("malformed bcrypt hash".into())
        };
    }
    if hash.starts_with("pbkdf2:") {
        return parse_pbkdf2(hash).map(|_| Scheme::WerkzeugPbkdf2);
    }
    if hash.starts_with("scrypt:") {
        return parse_scrypt(hash).map(|_| Scheme::WerkzeugScrypt);
    }
    let shown: String = hash.chars().take(12).collect();
    Err(format!(
        "unsupported password hash format ({shown}…): expected Argon2, Werkzeug pbkdf2/scrypt or bcrypt"
    ))
}

/// Checks a password against a legacy hash. Unparsable or unsupported hashes never match.
pub fn verify(password: &str, hash: &str) -> bool {
    match scheme_of(hash) {
        Ok(Scheme::WerkzeugPbkdf2) => verify_pbkdf2(password, hash).unwrap_or(false),
        Ok(Scheme::WerkzeugScrypt) => verify_scrypt(password, hash).unwrap_or(false),
        Ok(Scheme::Bcrypt) => bcrypt::verify(password, hash).unwrap_or(false),
        Ok(Scheme::Argon2) | Err(_) => false,
    }
}

enum Digest {
    Sha256,
    Sha512,
}

struct Pbkdf2Params<'a> {
    digest: Digest,
    iterations: u32,
    salt: &'a str,
    expected: Vec<u8>,
}

/// `method$salt$hexdigest` → its three parts.
fn split(hash: &str) -> Result<(&str, &str, Vec<u8>), String> {
    let mut parts = hash.splitn(3, '$');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(salt), Some(digest)) if !salt.is_empty() => {
            let expected = hex::decode(digest).map_err(|_| "the digest is not hexadecimal".to_owned())?;
            Ok((method, salt, expected))
        }
        _ => Err("expected method$salt$digest".into()),
    }
}

fn parse_pbkdf2(hash: &str) -> Result<Pbkdf2Params<'_>, String> {
    let (method, salt, expected) = split(hash)?;
    let fields: Vec<&str> = method.split(':').collect();
    let digest = match fields.get(1) {
        Some(&"sha256") => Digest::Sha256,
        Some(&"sha512") => Digest::Sha512,
        other => {
            return Err(format!(
                "unsupported pbkdf2 digest {other:?} (sha256 and sha512 are supported)"
            ));
        }
    };
    let iterations: u32 = fields
        .get(2)
        .and_then(|i| i.parse().ok())
        .ok_or("pbkdf2 hash without an iteration count")?;
    if !(1..=MAX_PBKDF2_ITERATIONS).contains(&iterations) {
        return Err(format!("pbkdf2 iteration count {iterations} is out of range"));
    }
    let want = match digest {
        Digest::Sha256 => 32,
        Digest::Sha512 => 64,
    };
    if expected.len() != want {
        return Err("pbkdf2 digest has the wrong length".into());
    }
    Ok(Pbkdf2Params {
        digest,
        iterations,
        salt,
        expected,
    })
}

fn pbkdf2_into<M: Mac + KeyInit + FixedOutputReset + Clone + Sync>(
    password: &str,
    salt: &str,
    iterations: u32,
    out: &mut [u8],
) -> bool {
    pbkdf2::pbkdf2::<M>(password.as_bytes(), salt.as_bytes(), iterations, out).is_ok()
}

fn verify_pbkdf2(password: &str, hash: &str) -> Result<bool, String> {
    let p = parse_pbkdf2(hash)?;
    let mut out = vec![0u8; p.expected.len()];
    let ok = match p.digest {
        Digest::Sha256 => pbkdf2_into::<Hmac<sha2::Sha256>>(password, p.salt, p.iterations, &mut out),
        Digest::Sha512 => pbkdf2_into::<Hmac<sha2::Sha512>>(password, p.salt, p.iterations, &mut out),
    };
    Ok(ok && constant_time_eq(&out, &p.expected))
}

fn parse_scrypt(hash: &str) -> Result<(scrypt::Params, &str, Vec<u8>), String> {
    let (method, salt, expected) = split(hash)?;
    let fields: Vec<u64> = method
        .split(':')
        .skip(1)
        .map(|f| f.parse().map_err(|_| format!("bad scrypt parameter {f:?}")))
        .collect::<Result<_, _>>()?;
    let [n, r, p] = fields[..] else {
        return Err("scrypt hash needs N:r:p".into());
    };
    if !n.is_power_of_two() || n < 2 {
        return Err("scrypt N must be a power of two".into());
    }
    let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| "scrypt N is too large".to_owned())?;
    if log_n > MAX_SCRYPT_LOG_N {
        return Err(format!("scrypt N = 2^{log_n} is out of range"));
    }
    let r = u32::try_from(r).map_err(|_| "scrypt r is too large".to_owned())?;
    let p = u32::try_from(p).map_err(|_| "scrypt p is too large".to_owned())?;
    let params = scrypt::Params::new(log_n, r, p, expected.len())
        .map_err(|e| format!("bad scrypt parameters: {e}"))?;
    Ok((params, salt, expected))
}

fn verify_scrypt(password: &str, hash: &str) -> Result<bool, String> {
    let (params, salt, expected) = parse_scrypt(hash)?;
    let mut out = vec![0u8; expected.len()];
    scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).map_err(|e| e.to_string())?;
    Ok(constant_time_eq(&out, &expected))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Werkzeug and Python's bcrypt (scripts/make-legacy-fixtures.py).
    const PBKDF2: &str = "pbkdf2:sha256:600000$eCfWFJS2zavPUkMU$f24bca82b3fe972c95d4daf69106ade968f28f2342bf1be009498b86561939c7";
    const PBKDF2_512: &str = "pbkdf2:sha512:1000$K2tA8ow3zxJz2s3N$194311da28d533649606e2b1fbee1213738f1d7c9a20e294a910879da2b1a0b713e37dedf592538d5d87f739e6f7f0504101c392e4d18cce74215b297a8f3506";
    const SCRYPT: &str = "scrypt:32768:8:1$Xo2o28mh3dQoQSWL$63ff6ca58ccd51a496fd8e24bbaf13d3a74d7cb3fcbfd991eca7b1f16357017f90e05df5bcb384f559951de914febc546695ce864d70ea01df561597395c01e2";
    const BCRYPT_2B: &str = "$2b$04$aqLm.mesdw38KFF22rsTXelNJXOSThVTPRXWtsF2fxyMFeTd4sXSi";
    const BCRYPT_2A: &str = "$2a$04$HLQtyBLjVNZhgyv3TgXI4uHT9o3diLjjkGzehCkiXTt3iRAbvI4zu";

    #[test]
    fn werkzeug_and_bcrypt_hashes_verify() {
        for hash in [PBKDF2, PBKDF2_512, SCRYPT, BCRYPT_2B, BCRYPT_2A] {
            assert!(verify("testpass", hash), "{hash}");
            assert!(!verify("testpasS", hash), "{hash}");
        }
        let bcrypt_2y = format!("$2y${}", &BCRYPT_2B[4..]);
        assert!(verify("testpass", &bcrypt_2y));
    }

    #[test]
    fn schemes_are_recognised_and_others_refused_with_a_reason() {
        assert_eq!(scheme_of(PBKDF2), Ok(Scheme::WerkzeugPbkdf2));
        assert_eq!(scheme_of(SCRYPT), Ok(Scheme::WerkzeugScrypt));
        assert_eq!(scheme_of(BCRYPT_2B), Ok(Scheme::Bcrypt));
        for bad in [
            "md5$abc$def",
            "plaintext",
            "pbkdf2:sha1:1000$salt$00",
            "pbkdf2:sha256$salt$00",
            "pbkdf2:sha256:99999999$salt$00",
            "scrypt:1000:8:1$salt$00",
            "$2b$04$short",
        ] {
            let err = scheme_of(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
            assert!(!verify("x", bad));
        }
    }
}
