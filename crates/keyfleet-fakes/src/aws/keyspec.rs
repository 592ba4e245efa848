//! Key specs, key usages and the algorithms AWS KMS reports for each valid combination.

pub(crate) const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";
pub(crate) const ENCRYPT_DECRYPT: &str = "ENCRYPT_DECRYPT";

/// `KeySpec` enum values, in the order of AWS's service model.
pub(crate) const KEY_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
];

/// The deprecated `CustomerMasterKeySpec` enum: the specs that existed before it was replaced (the first 13
/// of [`KEY_SPECS`]).
pub(crate) const CUSTOMER_MASTER_KEY_SPECS: &[&str] = KEY_SPECS.split_at(13).0;

pub(crate) const KEY_USAGES: &[&str] =
    &["SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE"];

pub(crate) const ORIGINS: &[&str] = &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];

/// The algorithm lists of a key's metadata; empty lists are omitted from responses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Algorithms {
    pub encryption: Vec<&'static str>,
    pub signing: Vec<&'static str>,
    pub mac: Vec<&'static str>,
    pub key_agreement: Vec<&'static str>,
    pub encapsulation: Vec<&'static str>,
}

const RSA_SIGNING: &[&str] = &[
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
];

/// The algorithms of a key with this spec and usage, or `None` when AWS does not allow the
/// combination (for example an HMAC key for encryption).
pub(crate) fn algorithms(spec: &str, usage: &str) -> Option<Algorithms> {
    let mut algs = Algorithms::default();
    match (spec, usage) {
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT") => algs.encryption = vec!["SYMMETRIC_DEFAULT"],
        ("RSA_2048" | "RSA_3072" | "RSA_4096", "ENCRYPT_DECRYPT") => {
            algs.encryption = vec!["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"];
        }
        ("RSA_2048" | "RSA_3072" | "RSA_4096", "SIGN_VERIFY") => algs.signing = RSA_SIGNING.to_vec(),
        ("ECC_NIST_P256" | "ECC_SECG_P256K1", "SIGN_VERIFY") => algs.signing = vec!["ECDSA_SHA_256"],
        ("ECC_NIST_P384", "SIGN_VERIFY") => algs.signing = vec!["ECDSA_SHA_384"],
        ("ECC_NIST_P521", "SIGN_VERIFY") => algs.signing = vec!["ECDSA_SHA_512"],
        ("ECC_NIST_P256" | "ECC_NIST_P384" | "ECC_NIST_P521" | "SM2", "KEY_AGREEMENT") => {
            algs.key_agreement = vec!["ECDH"];
        }
        ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY") => {
            algs.signing = vec!["ED25519_SHA_512", "ED25519_PH_SHA_512"];
        }
        ("SM2", "SIGN_VERIFY") => algs.signing = vec!["SM2DSA"],
        ("SM2", "ENCRYPT_DECRYPT") => algs.encryption = vec!["SM2PKE"],
        ("ML_DSA_44" | "ML_DSA_65" | "ML_DSA_87", "SIGN_VERIFY") => {
            algs.signing = vec!["ML_DSA_SHAKE_256"];
        }
        ("ML_KEM_512" | "ML_KEM_768" | "ML_KEM_1024", "ENCAPSULATE_DECAPSULATE") => {
            algs.encapsulation = vec!["ML_KEM"];
        }
        ("HMAC_224", "GENERATE_VERIFY_MAC") => algs.mac = vec!["HMAC_SHA_224"],
        ("HMAC_256", "GENERATE_VERIFY_MAC") => algs.mac = vec!["HMAC_SHA_256"],
        ("HMAC_384", "GENERATE_VERIFY_MAC") => algs.mac = vec!["HMAC_SHA_384"],
        ("HMAC_512", "GENERATE_VERIFY_MAC") => algs.mac = vec!["HMAC_SHA_512"],
        _ => return None,
    }
    Some(algs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_has_at_least_one_usage() {
        for spec in KEY_SPECS {
            assert!(KEY_USAGES.iter().any(|usage| algorithms(spec, usage).is_some()), "{spec}");
        }
    }

    #[test]
    fn symmetric_default_only_encrypts() {
        assert_eq!(
            algorithms(SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT).map(|a| a.encryption),
            Some(vec!["SYMMETRIC_DEFAULT"])
        );
        assert_eq!(algorithms(SYMMETRIC_DEFAULT, "SIGN_VERIFY"), None);
        assert_eq!(algorithms("HMAC_256", ENCRYPT_DECRYPT), None);
    }
}
