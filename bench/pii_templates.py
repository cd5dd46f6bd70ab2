"""Sentence templates of the labelled PII sets (bench/pii_sets.py), per part.

"{}" is the value. The three parts use disjoint sentence lists: "tune" (the rules were chosen on
it), "heldout" (looked at once while the rules were written) and "fresh" (written before any
result on it was seen, and measured only). The look-alike templates are shared: they measure.
"""

# Sentence templates per language; "{}" is the value. Tuning and held-out parts use disjoint lists.
TEMPLATES = {
    "tune": {
        "card": {"en": ["Please charge my card {} for the order.", "Card number: {} (expires 08/27)",
                        "I paid with {} on 12.03.2024 and was charged twice."],
                 "de": ["Bitte belasten Sie meine Kreditkarte {} mit 49,90 EUR.", "Kartennummer {} gültig bis 09/26"],
                 "fr": ["Ma carte {} a été débitée deux fois."], "es": ["Mi tarjeta {} fue rechazada ayer."]},
        "phone": {"en": ["Call us on {} between 9 and 5.", "Phone: {}", "Questions? {} (Mon-Fri)"],
                  "de": ["Rufen Sie uns an: {}", "Telefon {} (Mo-Fr 9-17 Uhr)", "Erreichbar unter {} oder per Post."],
                  "fr": ["Appelez le {} du lundi au vendredi.", "Standard : {}"],
                  "es": ["Llámenos al {} de 9 a 18 h."], "it": ["Chiamaci al numero {} dalle 9 alle 18."]},
        "email": {"en": ["Write to {} for details.", "Contact: {}"], "de": ["Schreiben Sie an {}."]},
        "iban": {"en": ["Transfer to IBAN {} please."], "de": ["Bankverbindung: {} (Sparkasse)"]},
        "ssn": {"en": ["My SSN is {} and my date of birth 1984-03-12.", "SSN: {}"]},
        "ip": {"en": ["Login from {} at 10:32.", "The request came from {} yesterday."]},
    },
    "heldout": {
        "card": {"en": ["Can you refund the charge on {}? It was a mistake.", "my visa {} got declined lol",
                        "Billing: card ending details {} / exp 11/28"],
                 "de": ["Die Abbuchung von {} am 03.05.2024 war doppelt.", "Zahlung per Karte {} erfolgt"],
                 "fr": ["Numéro de carte : {} — cryptogramme envoyé séparément."],
                 "es": ["Pagué con la tarjeta {} el lunes."], "pt": ["Meu cartão {} foi cobrado duas vezes."]},
        "phone": {"en": ["For bookings ring {} or visit us.", "Mobile {} — text first please.", "Reach me at {} any time."],
                  "de": ["Für Rückfragen: {}", "Sie erreichen uns unter {} werktags.", "Tel. {}, Fax auf Anfrage"],
                  "fr": ["Joignable au {} en semaine.", "Pour réserver : {}"],
                  "es": ["Teléfono de contacto: {}"], "it": ["Per informazioni {} (ore ufficio)."],
                  "pt": ["Ligue para {} para marcar."], "nl": ["Bel ons op {} voor een afspraak."],
                  "pl": ["Zadzwoń pod numer {} w dni robocze."]},
        "email": {"en": ["Send your CV to {} by Friday.", "{} wrote on 3 May:"], "fr": ["Écrivez-nous : {}"]},
        "iban": {"en": ["Our account: {}, reference your invoice number."],
                 "fr": ["Virement sur le compte {} svp."], "es": ["Cuenta: {}"]},
        "ssn": {"en": ["Applicant SSN {}, employer EIN on file.", "social security number: {}"]},
        "ip": {"en": ["Blocked {} after 5 failed logins.", "sshd: connection from {} port 51234"]},
    },
    # Written before any result on this part was looked at (issue 14, second round), and never tuned on.
    "fresh": {
        "card": {"en": ["Dispute filed for a charge on card {} last Tuesday.", "Saved payment method: {}",
                        "He read out the long number, {}, over the phone."],
                 "de": ["Meine Karte mit der Nummer {} wurde gesperrt.", "Kreditkarte: {} (Inhaber: siehe oben)"],
                 "fr": ["J'ai réglé avec la carte {} hier soir."], "es": ["Número de tarjeta {} (caduca en 2027)"],
                 "it": ["La mia carta {} risulta addebitata due volte."], "nl": ["Betaald met kaart {} op 4 juni."]},
        "phone": {"en": ["Questions about your booking? Give us a call: {}", "Office hours 9-5, telephone {}",
                         "Text or WhatsApp {} for a quote.", "Our front desk can be reached on {}.",
                         "Leave a message on {} and we'll get back to you.", "Dr. Patel's surgery: {}",
                         "After-hours emergencies {}"],
                  "de": ["Terminvereinbarung unter {}", "Telefonisch sind wir unter {} erreichbar.", "Notdienst: {}",
                         "Ihr Ansprechpartner: Herr Krause, {}"],
                  "fr": ["Renseignements au {}", "Tél. : {} (appel non surtaxé)", "Contactez notre agence au {}."],
                  "es": ["Información y reservas: {}", "Escríbenos por WhatsApp al {}",
                         "Atención al cliente {} (lunes a viernes)"],
                  "it": ["Prenotazioni al {}", "Tel. {} – chiuso il lunedì"],
                  "pt": ["Atendimento: {} (seg. a sex.)", "Fale conosco pelo {}"],
                  "nl": ["Neem contact op via {}.", "Telefonisch bereikbaar op {}"],
                  "pl": ["Rezerwacje pod numerem {}", "Kontakt telefoniczny: {}"],
                  "sv": ["Kundtjänst: {}", "Ring oss på {} för bokning."],
                  "ru": ["Звоните: {}", "Телефон для справок {}"],
                  "tr": ["Bize {} numarasından ulaşabilirsiniz."], "ar": ["للاستفسار اتصل على {}"],
                  "ja": ["お問い合わせは {} まで"], "zh": ["联系电话：{}"]},
        "email": {"en": ["Press enquiries: {}", "cc: {} (please keep in the loop)"], "de": ["E-Mail an {} genügt."],
                  "es": ["Correo: {}"]},
        "iban": {"en": ["Please pay into {} within 14 days."], "de": ["Überweisung an {}, Verwendungszweck Name"],
                 "it": ["IBAN: {} intestato a ASD Sport"]},
        "ssn": {"en": ["SSN on the W-4: {}", "the last applicant gave {} as her social security number"]},
        "ip": {"en": ["Your IP address {} has been logged.", "nginx: {} - - \"GET / HTTP/1.1\" 200"]},
    },
}
# A page that gives its country away only by a "+CC" number elsewhere on it: that sentence, per part.
HEADS = {"tune": "Head office {}. ", "heldout": "Head office {}. ", "fresh": "Our main switchboard is {}. "}
# Look-alikes (kind -> templates with "{}"), the same in both parts: they measure, not tune.
NEGATIVE_TEMPLATES = {
    "order_number": ["Order #{} has shipped.", "Bestellnummer: {}", "订单号 {} 已发货", "Your order {} is confirmed."],
    "tracking_number": ["Tracking number: {}", "Sendungsnummer {}", "Track your parcel: {}"],
    "isbn": ["ISBN {} (paperback)", "ISBN-13: {}"],
    "ean": ["EAN {} · 250 g", "GTIN: {}"],
    "imei": ["IMEI: {}", "Device IMEI {} registered"],
    "timestamp": ["ts={}", "created {} by cron", "Zeitstempel: {}"],
    "article_number": ["Art.-Nr. {}", "Item {} in stock", "SKU {}"],
}
