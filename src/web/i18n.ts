/**
 * Interface language: French or Dutch, the user's choice kept in
 * localStorage (default: the browser's language when it is Dutch, else
 * French). Envelope-type labels come from the server (fieldLabels,
 * valueLabels); these are the page's own words.
 */
export type Lang = 'fr' | 'nl';

const fr = {
  appName: 'bxchange',
  skipToContent: 'Aller au contenu',
  language: 'Langue',
  devBanner: 'Connexion de développement : environnement de test, pas pour des données réelles.',
  signInTitle: 'Échange sécurisé de fichiers',
  signInIntro: 'Les administrations locales bruxelloises et Bruxelles Pouvoirs locaux échangent ici leurs fichiers officiels, chiffrés de bout en bout.',
  signIn: 'Se connecter',
  devSignIn: 'Connexion de développement',
  signOut: 'Se déconnecter',
  signedInAs: 'Connecté·e : {name}',
  navCompose: 'Nouvel envoi',
  navInbox: 'Reçus',
  navOutbox: 'Envoyés',
  mainNav: 'Navigation principale',
  loading: 'Chargement…',
  error: 'Erreur : {message}',
  notFound: 'Page introuvable.',
  sessionEnded: 'Votre session a pris fin. Reconnectez-vous.',
  composeTitle: 'Nouvel envoi',
  from: 'Boîte expéditrice',
  type: "Type d'envoi",
  chooseType: '— choisir —',
  to: 'Destinataires (adresses séparées par des virgules)',
  inReplyTo: 'En réponse à (identifiant de l’envoi)',
  required: 'obligatoire',
  createDraft: 'Préparer l’envoi',
  formHasErrors: 'Le serveur a refusé le formulaire : corrigez les champs signalés.',
  noSendMailbox: 'Vous ne pouvez envoyer depuis aucune boîte.',
  amountHint: 'en euros, hors TVA (ex. 1234,56)',
  oneValuePerLine: 'une valeur par ligne',
  addItem: 'Ajouter',
  removeItem: 'Retirer',
  item: 'Élément {n}',
  yes: 'Oui',
  no: 'Non',
  notANumber: 'n’est pas un nombre',
  notAnAmount: 'n’est pas un montant en euros',
  draftTitle: 'Envoi en préparation',
  recipients: 'Destinataires',
  encryptedFor: 'Chiffré pour',
  noEncryptionKeys: 'Le serveur n’a donné aucune clé de chiffrement pour ce brouillon : impossible de chiffrer.',
  files: 'Fichiers',
  chooseFiles: 'Choisir des fichiers',
  dropHere: 'ou déposez-les ici',
  fileRole: 'Rôle du fichier « {name} »',
  noRole: '(aucun)',
  newFilesRole: 'Rôle des fichiers ajoutés',
  requiredRolesGroup: 'Rôles obligatoires pour cet envoi',
  otherRolesGroup: 'Autres rôles',
  requiredMark: '{role} — obligatoire',
  missingRoles: 'Rôles obligatoires sans fichier : {roles}. L’envoi n’est possible qu’une fois chacun couvert par un fichier.',
  rolesCovered: 'Chaque rôle obligatoire ({roles}) a un fichier.',
  roleDeliberation: 'Délibération',
  roleBudget: 'Budget',
  roleBudgetChange: 'Modification budgétaire',
  roleAccounts: 'Comptes',
  roleRegulation: 'Règlement',
  roleDecision: 'Décision',
  roleSpecifications: 'Cahier des charges',
  roleAwardReport: 'Rapport d’attribution',
  roleAnnex: 'Annexe',
  roleDataset: 'Jeu de données',
  roleDocument: 'Document',
  roleNomination: 'Proposition',
  encrypting: 'Chiffrement',
  uploading: 'Envoi',
  overall: 'Progression totale',
  pause: 'Pause',
  resume: 'Reprendre',
  remove: 'Retirer',
  startUpload: 'Chiffrer et envoyer',
  stateNew: 'en attente',
  stateEncrypting: 'chiffrement…',
  stateEncrypted: 'chiffré',
  stateUploading: 'envoi…',
  statePaused: 'en pause',
  stateDone: 'envoyé',
  stateError: 'erreur',
  stateNeedsFile: 'choisissez à nouveau ce fichier (le chiffrement avait été interrompu)',
  resumedFromSpool: 'Reprise depuis le fichier chiffré conservé dans le navigateur.',
  uploadedFiles: 'Fichiers déjà reçus par le serveur',
  submit: 'Envoyer',
  submitRefused: 'Envoi refusé : {message}',
  submitted: 'Envoyé.',
  deleteDraft: 'Supprimer le brouillon',
  pendingDrafts: 'Envois en cours de préparation',
  continueDraft: 'Continuer',
  inboxTitle: 'Reçus — {mailbox}',
  outboxTitle: 'Envoyés — {mailbox}',
  mailbox: 'Boîte',
  filterType: 'Type',
  filterStatus: 'Statut',
  filterDeadline: 'Échéance',
  all: 'Tous',
  deadlineOverdue: 'dépassée',
  deadlineWeek: 'dans les 7 jours',
  deadlineAny: 'avec échéance',
  applyFilters: 'Filtrer',
  colDate: 'Date',
  colType: 'Type',
  colFrom: 'Expéditeur',
  colTo: 'Destinataires',
  colSubject: 'Objet',
  colStatus: 'Statut',
  colDeadline: 'Échéance',
  noEnvelopes: 'Aucun envoi.',
  more: 'Plus',
  open: 'Ouvrir',
  overdue: 'dépassée',
  envelopeTitle: 'Envoi {type}',
  metadata: 'Données de l’envoi',
  envelopeId: 'Identifiant',
  sender: 'Expéditeur',
  status: 'Statut',
  submittedAt: 'Envoyé le',
  deadline: 'Échéance',
  recipientStatus: 'Statut par destinataire',
  colRecipient: 'Destinataire',
  colDelivered: 'Remis',
  colRetrieved: 'Téléchargé',
  colAcknowledged: 'Accusé de réception',
  colName: 'Nom',
  colRole: 'Rôle',
  colSize: 'Taille',
  colActions: 'Actions',
  downloadDecrypt: 'Télécharger et déchiffrer',
  downloading: 'Téléchargement',
  decrypting: 'Déchiffrement',
  save: 'Enregistrer « {name} »',
  integrityOk: 'Intégrité vérifiée',
  integrityFailed: 'Contrôle d’intégrité échoué : le fichier n’est pas proposé.',
  hashMismatch: 'L’empreinte SHA-256 du fichier déchiffré ne correspond pas à celle annoncée par l’expéditeur : le fichier n’est pas proposé.',
  passphraseFor: 'Phrase secrète de la boîte {mailbox}',
  unlock: 'Déverrouiller',
  wrongPassphrase: 'Phrase secrète incorrecte.',
  keyStaysHere: 'La phrase secrète reste dans cette page (mémoire uniquement) ; elle n’est jamais envoyée.',
  noPrivateKey: 'Aucune clé privée déposée pour {mailbox}.',
  receipts: 'Accusés (preuves signées)',
  colEvent: 'Événement',
  colTime: 'Moment',
  colSignature: 'Signature',
  verifying: 'vérification…',
  verified: 'Vérifiée',
  notVerified: 'Non vérifiée',
  acknowledge: 'Accuser réception',
  acknowledged: 'Réception accusée.',
  computed: 'Calculé par la plateforme',
  statusDraft: 'brouillon',
  statusSubmitted: 'envoyé',
  statusPending: 'en attente',
  statusDelivered: 'remis',
  statusRetrieved: 'téléchargé',
  statusAcknowledged: 'accusé',
  noOpfs: 'Ce navigateur ne permet pas de stocker des fichiers chiffrés localement (Origin Private File System) : utilisez un navigateur récent.',
  evSubmissionAcceptance: 'Envoi accepté',
  evSubmissionRejection: 'Envoi refusé',
  evContentConsignment: 'Remis à la boîte',
  evContentHandover: 'Téléchargé par le destinataire',
  evConsignmentAcceptance: 'Réception accusée',
  evAcceptanceRejectionExpiry: 'Délai d’accusé expiré',
};

export type MessageKey = keyof typeof fr;

const nl: Record<MessageKey, string> = {
  appName: 'bxchange',
  skipToContent: 'Naar de inhoud',
  language: 'Taal',
  devBanner: 'Ontwikkelaarsaanmelding: testomgeving, niet voor echte gegevens.',
  signInTitle: 'Beveiligde bestandsuitwisseling',
  signInIntro: 'De Brusselse lokale besturen en Brussel Plaatselijke Besturen wisselen hier hun officiële bestanden uit, end-to-end versleuteld.',
  signIn: 'Aanmelden',
  devSignIn: 'Ontwikkelaarsaanmelding',
  signOut: 'Afmelden',
  signedInAs: 'Aangemeld: {name}',
  navCompose: 'Nieuwe zending',
  navInbox: 'Ontvangen',
  navOutbox: 'Verzonden',
  mainNav: 'Hoofdnavigatie',
  loading: 'Laden…',
  error: 'Fout: {message}',
  notFound: 'Pagina niet gevonden.',
  sessionEnded: 'Uw sessie is beëindigd. Meld u opnieuw aan.',
  composeTitle: 'Nieuwe zending',
  from: 'Afzendende postbus',
  type: 'Soort zending',
  chooseType: '— kiezen —',
  to: 'Bestemmelingen (adressen gescheiden door komma’s)',
  inReplyTo: 'Antwoord op (kenmerk van de zending)',
  required: 'verplicht',
  createDraft: 'Zending voorbereiden',
  formHasErrors: 'De server heeft het formulier geweigerd: verbeter de aangeduide velden.',
  noSendMailbox: 'U mag vanuit geen enkele postbus verzenden.',
  amountHint: 'in euro, excl. btw (bv. 1234,56)',
  oneValuePerLine: 'één waarde per regel',
  addItem: 'Toevoegen',
  removeItem: 'Verwijderen',
  item: 'Element {n}',
  yes: 'Ja',
  no: 'Nee',
  notANumber: 'is geen getal',
  notAnAmount: 'is geen bedrag in euro',
  draftTitle: 'Zending in voorbereiding',
  recipients: 'Bestemmelingen',
  encryptedFor: 'Versleuteld voor',
  noEncryptionKeys: 'De server gaf geen versleutelingssleutels voor dit ontwerp: versleutelen is onmogelijk.',
  files: 'Bestanden',
  chooseFiles: 'Bestanden kiezen',
  dropHere: 'of sleep ze hierheen',
  fileRole: 'Rol van het bestand “{name}”',
  noRole: '(geen)',
  newFilesRole: 'Rol van de toegevoegde bestanden',
  requiredRolesGroup: 'Verplichte rollen voor deze zending',
  otherRolesGroup: 'Andere rollen',
  requiredMark: '{role} — verplicht',
  missingRoles: 'Verplichte rollen zonder bestand: {roles}. Verzenden kan pas als elk ervan een bestand heeft.',
  rolesCovered: 'Elke verplichte rol ({roles}) heeft een bestand.',
  roleDeliberation: 'Beraadslaging',
  roleBudget: 'Begroting',
  roleBudgetChange: 'Begrotingswijziging',
  roleAccounts: 'Rekeningen',
  roleRegulation: 'Reglement',
  roleDecision: 'Beslissing',
  roleSpecifications: 'Bestek',
  roleAwardReport: 'Gunningsverslag',
  roleAnnex: 'Bijlage',
  roleDataset: 'Dataset',
  roleDocument: 'Document',
  roleNomination: 'Voordracht',
  encrypting: 'Versleutelen',
  uploading: 'Verzenden',
  overall: 'Totale voortgang',
  pause: 'Pauzeren',
  resume: 'Hervatten',
  remove: 'Verwijderen',
  startUpload: 'Versleutelen en verzenden',
  stateNew: 'wachtend',
  stateEncrypting: 'versleutelen…',
  stateEncrypted: 'versleuteld',
  stateUploading: 'verzenden…',
  statePaused: 'gepauzeerd',
  stateDone: 'verzonden',
  stateError: 'fout',
  stateNeedsFile: 'kies dit bestand opnieuw (het versleutelen was onderbroken)',
  resumedFromSpool: 'Hervat vanuit het versleutelde bestand dat in de browser bewaard is.',
  uploadedFiles: 'Bestanden die de server al ontving',
  submit: 'Verzenden',
  submitRefused: 'Verzending geweigerd: {message}',
  submitted: 'Verzonden.',
  deleteDraft: 'Ontwerp verwijderen',
  pendingDrafts: 'Zendingen in voorbereiding',
  continueDraft: 'Verdergaan',
  inboxTitle: 'Ontvangen — {mailbox}',
  outboxTitle: 'Verzonden — {mailbox}',
  mailbox: 'Postbus',
  filterType: 'Soort',
  filterStatus: 'Status',
  filterDeadline: 'Termijn',
  all: 'Alle',
  deadlineOverdue: 'verstreken',
  deadlineWeek: 'binnen 7 dagen',
  deadlineAny: 'met termijn',
  applyFilters: 'Filteren',
  colDate: 'Datum',
  colType: 'Soort',
  colFrom: 'Afzender',
  colTo: 'Bestemmelingen',
  colSubject: 'Onderwerp',
  colStatus: 'Status',
  colDeadline: 'Termijn',
  noEnvelopes: 'Geen zendingen.',
  more: 'Meer',
  open: 'Openen',
  overdue: 'verstreken',
  envelopeTitle: 'Zending {type}',
  metadata: 'Gegevens van de zending',
  envelopeId: 'Kenmerk',
  sender: 'Afzender',
  status: 'Status',
  submittedAt: 'Verzonden op',
  deadline: 'Termijn',
  recipientStatus: 'Status per bestemmeling',
  colRecipient: 'Bestemmeling',
  colDelivered: 'Afgeleverd',
  colRetrieved: 'Gedownload',
  colAcknowledged: 'Ontvangst bevestigd',
  colName: 'Naam',
  colRole: 'Rol',
  colSize: 'Grootte',
  colActions: 'Acties',
  downloadDecrypt: 'Downloaden en ontsleutelen',
  downloading: 'Downloaden',
  decrypting: 'Ontsleutelen',
  save: '“{name}” opslaan',
  integrityOk: 'Integriteit gecontroleerd',
  integrityFailed: 'Integriteitscontrole mislukt: het bestand wordt niet aangeboden.',
  hashMismatch: 'De SHA-256 van het ontsleutelde bestand verschilt van wat de afzender opgaf: het bestand wordt niet aangeboden.',
  passphraseFor: 'Wachtzin van postbus {mailbox}',
  unlock: 'Ontgrendelen',
  wrongPassphrase: 'Verkeerde wachtzin.',
  keyStaysHere: 'De wachtzin blijft in deze pagina (alleen in het geheugen); hij wordt nooit verzonden.',
  noPrivateKey: 'Geen privésleutel neergelegd voor {mailbox}.',
  receipts: 'Ontvangstbewijzen (ondertekende bewijzen)',
  colEvent: 'Gebeurtenis',
  colTime: 'Tijdstip',
  colSignature: 'Handtekening',
  verifying: 'controleren…',
  verified: 'Geverifieerd',
  notVerified: 'Niet geverifieerd',
  acknowledge: 'Ontvangst bevestigen',
  acknowledged: 'Ontvangst bevestigd.',
  computed: 'Berekend door het platform',
  statusDraft: 'ontwerp',
  statusSubmitted: 'verzonden',
  statusPending: 'wachtend',
  statusDelivered: 'afgeleverd',
  statusRetrieved: 'gedownload',
  statusAcknowledged: 'bevestigd',
  noOpfs: 'Deze browser kan geen versleutelde bestanden lokaal bewaren (Origin Private File System): gebruik een recente browser.',
  evSubmissionAcceptance: 'Zending aanvaard',
  evSubmissionRejection: 'Zending geweigerd',
  evContentConsignment: 'Afgeleverd in de postbus',
  evContentHandover: 'Gedownload door de bestemmeling',
  evConsignmentAcceptance: 'Ontvangst bevestigd',
  evAcceptanceRejectionExpiry: 'Termijn voor bevestiging verstreken',
};

const messages: Record<Lang, Record<MessageKey, string>> = { fr, nl };
const STORAGE_KEY = 'bx.lang';

function initialLang(): Lang {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored === 'fr' || stored === 'nl') return stored;
  return navigator.language.toLowerCase().startsWith('nl') ? 'nl' : 'fr';
}

let current: Lang = initialLang();

export function lang(): Lang {
  return current;
}

export function setLang(next: Lang): void {
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
}

export function t(key: MessageKey, params: Record<string, string | number> = {}): string {
  return messages[current][key].replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`));
}

/** A server label {fr, nl} in the current language. */
export function label(value: { fr: string; nl: string } | undefined, fallback: string): string {
  return value?.[current] ?? fallback;
}

const STATUS_KEYS: Record<string, MessageKey> = {
  draft: 'statusDraft',
  submitted: 'statusSubmitted',
  pending: 'statusPending',
  delivered: 'statusDelivered',
  retrieved: 'statusRetrieved',
  acknowledged: 'statusAcknowledged',
};

export function statusLabel(status: string): string {
  const key = STATUS_KEYS[status];
  return key === undefined ? status : t(key);
}

/** A file role in the interface language (the role's own name when the page does not know it). */
export function roleLabel(role: string): string {
  const key = `role${role.charAt(0).toUpperCase()}${role.slice(1)}` as MessageKey;
  return key in fr ? messages[current][key] : role;
}

/** An evidence event type (ETSI EN 319 522 names) in the interface language, the name kept beside it. */
export function eventLabel(eventType: string): string {
  const key = `ev${eventType}` as MessageKey;
  return key in fr ? messages[current][key] : eventType;
}

export function formatDateTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—';
  return new Intl.DateTimeFormat(current === 'nl' ? 'nl-BE' : 'fr-BE', { dateStyle: 'short', timeStyle: 'short', timeZone: 'Europe/Brussels' }).format(new Date(iso));
}

export function formatDate(isoDate: string | null | undefined): string {
  if (isoDate === null || isoDate === undefined) return '—';
  const [y, m, d] = isoDate.split('-');
  return `${d}/${m}/${y}`;
}

/** Today's date in Brussels, YYYY-MM-DD (deadlines are Brussels dates). */
export function todayInBrussels(): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Brussels', year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}

setLang(current);
